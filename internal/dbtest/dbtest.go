// Package dbtest opens a real SQLite database for a test: a file in
// t.TempDir(), with the same pragmas and pool settings a service uses.
package dbtest

import (
	"path/filepath"
	"testing"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/sqlitedb"
)

// Open returns a fresh file database migrated for models, closed when the
// test ends. Each call gets its own file; tests never share a database.
func Open(tb testing.TB, models ...any) *gorm.DB {
	tb.Helper()
	db, err := sqlitedb.Open(filepath.Join(tb.TempDir(), "test.db"), sqlitedb.Config{})
	if err != nil {
		tb.Fatalf("open test database: %v", err)
	}
	tb.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	})
	if len(models) > 0 {
		if err := db.AutoMigrate(models...); err != nil {
			tb.Fatalf("migrate test database: %v", err)
		}
	}
	return db
}
