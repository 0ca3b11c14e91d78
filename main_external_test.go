package chapkit_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/chapkit-go/chapkit/internal/pgtest"
)

// TestMain fails the package when any test leaves a goroutine behind: job
// workers, SSE handlers, HTTP connections and database pools must all be
// stopped by App.Shutdown and the tests' cleanups.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { pgtest.Stop() }))
}

// TestPostgres reruns this package's suite with every app on PostgreSQL
// (apptest.DBTarget), so the HTTP contract is checked on both engines.
func TestPostgres(t *testing.T) { pgtest.RerunOnPostgres(t) }
