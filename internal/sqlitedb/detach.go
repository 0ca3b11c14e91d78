package sqlitedb

import (
	"context"
	"database/sql/driver"

	"github.com/mattn/go-sqlite3"
)

// The driver registered by this package runs every statement detached from
// its context's cancellation. mattn/go-sqlite3 answers a cancelled context
// with sqlite3_interrupt, which acts on the whole connection; a service
// shares one connection, and an interrupt that lands just as a statement
// finishes can abort the next caller's statement instead ("interrupted" on
// an unrelated request, or on the write that records a cancelled job). So
// statements always run to completion: they are short, and database/sql
// still honours the context while a caller waits for the connection.

type detachedDriver struct{ d *sqlite3.SQLiteDriver }

func (d detachedDriver) Open(dsn string) (driver.Conn, error) {
	c, err := d.d.Open(dsn)
	if err != nil {
		return nil, err
	}
	conn := &detachedConn{SQLiteConn: c.(*sqlite3.SQLiteConn)}
	if walTarget(dsn) && backgroundCheckpoints {
		if conn.cp, err = startCheckpointer(d.d, dsn, conn.SQLiteConn); err != nil {
			_ = conn.SQLiteConn.Close()
			return nil, err
		}
	}
	return conn, nil
}

type detachedConn struct {
	*sqlite3.SQLiteConn
	cp *checkpointer // nil unless the file is in WAL mode
}

// Close stops the connection's checkpointer first, so that the main
// connection, when it is the last one, is the one that copies the log
// back and removes it.
func (c *detachedConn) Close() error {
	if c.cp != nil {
		c.cp.close()
	}
	return c.SQLiteConn.Close()
}

func (c *detachedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.SQLiteConn.ExecContext(context.WithoutCancel(ctx), query, args)
}

func (c *detachedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.SQLiteConn.QueryContext(context.WithoutCancel(ctx), query, args)
}

func (c *detachedConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.SQLiteConn.BeginTx(context.WithoutCancel(ctx), opts)
}

func (c *detachedConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *detachedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	s, err := c.SQLiteConn.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil, err
	}
	return &detachedStmt{s.(*sqlite3.SQLiteStmt)}, nil
}

type detachedStmt struct{ *sqlite3.SQLiteStmt }

func (s *detachedStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.SQLiteStmt.ExecContext(context.WithoutCancel(ctx), args)
}

func (s *detachedStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.SQLiteStmt.QueryContext(context.WithoutCancel(ctx), args)
}
