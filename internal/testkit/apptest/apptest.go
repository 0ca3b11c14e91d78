// Package apptest builds and starts chapkit apps for tests: each on its
// own SQLite file in the test's temporary directory, shut down when the
// test ends. It imports the root package, so only external test packages
// (chapkit_test, the e2e suite) can use it; package-internal tests use
// testkit.
package apptest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/pgtest"
)

// DBPath returns a fresh SQLite file path in the test's temporary
// directory; tests never share a database.
func DBPath(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(tb.TempDir(), "test.db")
}

// DBTarget returns a fresh database of the engine under test: a SQLite
// file, or a new PostgreSQL database when the suite is rerun on PostgreSQL
// (see pgtest.RerunOnPostgres). Calling WithDatabase with it runs a suite
// on both engines unchanged.
func DBTarget(tb testing.TB) string {
	tb.Helper()
	if pgtest.OnPostgres() {
		return pgtest.URL(tb)
	}
	return DBPath(tb)
}

// Start builds the app of b, starts it and shuts it down when the test
// ends; a Build, Start or Shutdown error fails the test.
func Start(tb testing.TB, b *chapkit.ServiceBuilder) *chapkit.App {
	tb.Helper()
	app, err := b.Build()
	if err != nil {
		tb.Fatalf("Build() error = %v", err)
	}
	if err := app.Start(tb.Context()); err != nil {
		tb.Fatalf("Start() error = %v", err)
	}
	tb.Cleanup(func() {
		if err := app.Shutdown(context.Background()); err != nil {
			tb.Errorf("Shutdown() error = %v", err)
		}
	})
	return app
}
