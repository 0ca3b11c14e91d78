// Package sqlitedb opens SQLite databases the way every chapkit service
// needs them: the same pragmas on every connection (foreign keys on, a
// busy timeout, the synchronous level, memory temp store, a 64 MB cache),
// WAL for files, and one connection so writers never meet "database is
// locked".
package sqlitedb

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// driverName is a mattn driver registered with a connect hook, so the
// pragmas that have no DSN parameter apply to every connection, including
// one the pool opens again after an error.
const driverName = "sqlite3_chapkit"

var registerOnce sync.Once

func register() {
	registerOnce.Do(func() {
		sql.Register(driverName, detachedDriver{&sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			for _, p := range []string{
				"PRAGMA temp_store=MEMORY",
				"PRAGMA cache_size=-64000",
				"PRAGMA mmap_size=134217728",
			} {
				if _, err := c.Exec(p, nil); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return nil
		}}})
	})
}

// Config tunes a database opened by [Open]. The zero value is the default.
type Config struct {
	// Synchronous is the SQLite synchronous mode: "NORMAL" (default; a
	// power cut may lose the last commits but never corrupts) or "FULL".
	Synchronous string
	// BusyTimeout is how long a connection waits for a lock; default 30 s.
	BusyTimeout time.Duration
	// Logger receives GORM's slow-query and error logs; nil discards them.
	Logger *slog.Logger
}

// IsMemory reports whether target names an in-memory database.
func IsMemory(target string) bool {
	p := Path(target)
	return p == "" || p == ":memory:" || strings.Contains(p, "mode=memory")
}

// Path turns the accepted spellings of a database into a file path:
// "", ":memory:", "tasks.db", "/abs/tasks.db", "sqlite:///tasks.db",
// "sqlite+aiosqlite:///tasks.db" (the Python form) and "file:tasks.db".
func Path(target string) string {
	t := strings.TrimSpace(target)
	for _, prefix := range []string{"sqlite+aiosqlite://", "sqlite://"} {
		if rest, ok := strings.CutPrefix(t, prefix); ok {
			// sqlite:///rel.db is relative, sqlite:////abs.db is absolute,
			// as in SQLAlchemy URLs.
			t = strings.TrimPrefix(rest, "/")
			break
		}
	}
	t = strings.TrimPrefix(t, "file:")
	if i := strings.IndexByte(t, '?'); i >= 0 && !strings.Contains(t[i:], "mode=memory") {
		t = t[:i]
	}
	return t
}

// Open opens (creating when missing) the SQLite database named by target.
// An empty target or ":memory:" opens a private in-memory database.
func Open(target string, cfg Config) (*gorm.DB, error) {
	register()
	sync := strings.ToUpper(cfg.Synchronous)
	if sync == "" {
		sync = "NORMAL"
	}
	switch sync {
	case "OFF", "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite synchronous mode %q: use NORMAL or FULL", cfg.Synchronous)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = 30 * time.Second
	}
	q := url.Values{}
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", sync)
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	// Immediate transactions take the write lock at BEGIN, so a
	// transaction never fails half-way when it turns from reading to
	// writing while another connection (another process) writes.
	q.Set("_txlock", "immediate")

	memory := IsMemory(target)
	var dsn string
	if memory {
		dsn = "file::memory:?" + q.Encode()
	} else {
		q.Set("_journal_mode", "WAL")
		dsn = "file:" + Path(target) + "?" + q.Encode()
	}
	gl := logger.Discard
	if cfg.Logger != nil {
		gl = logger.NewSlogLogger(cfg.Logger, logger.Config{SlowThreshold: time.Second, LogLevel: logger.Warn, IgnoreRecordNotFoundError: true})
	}
	db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: driverName, DSN: dsn}), &gorm.Config{
		Logger:         gl,
		TranslateError: true,
		// GORM's PrepareStmt is off on purpose: its cache prepares a new
		// statement while holding a lock, on whatever connection it can
		// get; with the one connection held by a transaction that itself
		// needs to prepare, the two wait on each other for ever. mattn's
		// driver keeps a statement cache of its own per connection.
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		// Every write chapkit issues is a single statement or an explicit
		// transaction; GORM's implicit BEGIN/COMMIT around each would
		// double the round trips on the job path for nothing.
		SkipDefaultTransaction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", target, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer at a time anyway, and queueing
	// in Go is fairer and faster than SQLite's busy-wait sleeps. For
	// :memory: it is also what keeps the data: every new connection would
	// open a fresh, empty database, so the one connection must never idle
	// out either.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", target, err)
	}
	return db, nil
}
