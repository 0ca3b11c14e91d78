package sqlitedb

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers "sqlite3" for the outside process's connection

	"github.com/chapkit-go/chapkit/problem"
)

// TestOutsideWriterFailsFastAsUnavailable holds the write lock from another
// connection, as another process would, and checks that a write gives up
// after the busy timeout with an error classified as temporary (a 503 with
// Retry-After), that reads still work meanwhile (WAL), and that writes
// succeed once the lock is gone.
func TestOutsideWriterFailsFastAsUnavailable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tasks.db")
	const busy = 200 * time.Millisecond
	db, err := Open(path, Config{BusyTimeout: busy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	if err := db.Exec("CREATE TABLE marks (n INTEGER)").Error; err != nil {
		t.Fatal(err)
	}

	outside, err := sql.Open("sqlite3", fileURI(path))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = outside.Close() })
	ctx := t.Context()
	holder, err := outside.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	err = db.Exec("INSERT INTO marks VALUES (1)").Error
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("write under an outside lock succeeded")
	}
	if pe := problem.Database("test.write", err); pe.Kind != problem.KindUnavailable || pe.RetryAfter <= 0 {
		t.Errorf("Database(%v) = kind %v, Retry-After %d; want KindUnavailable with Retry-After", err, pe.Kind, pe.RetryAfter)
	}
	if elapsed < busy || elapsed > busy+2*time.Second {
		t.Errorf("write failed after %v, want about the busy timeout %v", elapsed, busy)
	}
	var n int
	if err := db.Raw("SELECT count(*) FROM marks").Scan(&n).Error; err != nil {
		t.Errorf("read under an outside write lock: %v", err)
	}

	if _, err := holder.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	_ = holder.Close()
	if err := db.Exec("INSERT INTO marks VALUES (1)").Error; err != nil {
		t.Errorf("write after the lock was released: %v", err)
	}
}

func TestDefaultBusyTimeout(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "t.db"), Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(t, db) })
	var ms int64
	if err := db.Raw("PRAGMA busy_timeout").Scan(&ms).Error; err != nil {
		t.Fatal(err)
	}
	if got := time.Duration(ms) * time.Millisecond; got != DefaultBusyTimeout {
		t.Errorf("busy_timeout = %v, want %v", got, DefaultBusyTimeout)
	}
}
