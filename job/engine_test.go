package job

import (
	"context"
	"path/filepath"
	"sync"
	"testing"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
)

// The job suite runs on both engines: on SQLite in this process, and on
// PostgreSQL in a child process that TestPostgres starts.
func TestPostgres(t *testing.T) { pgtest.RerunOnPostgres(t) }

var listeners sync.Map // *gorm.DB → Listener of its PostgreSQL database

// openDB returns a fresh, migrated database of the engine under test,
// closed when the test ends.
func openDB(tb testing.TB) *gorm.DB {
	tb.Helper()
	var db *gorm.DB
	var err error
	if pgtest.OnPostgres() {
		url := pgtest.URL(tb)
		db, err = pgdb.Open(url, pgdb.Config{})
		if err == nil {
			listeners.Store(db, pgdb.NewListener(url, nil))
		}
	} else {
		db, err = sqlitedb.Open(filepath.Join(tb.TempDir(), "test.db"), sqlitedb.Config{})
	}
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() {
		listeners.Delete(db)
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	if err := Migrate(context.Background(), db); err != nil {
		tb.Fatalf("migrate test database: %v", err)
	}
	return db
}

// newSched is New with the notification listener of db's engine.
func newSched(db *gorm.DB, cfg Config) *Scheduler {
	if l, ok := listeners.Load(db); ok && cfg.Listener == nil {
		cfg.Listener = l.(Listener)
	}
	return New(db, cfg)
}
