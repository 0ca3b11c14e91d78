package chapkit_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any test leaves a goroutine behind: job
// workers, SSE handlers, HTTP connections and database pools must all be
// stopped by App.Shutdown and the tests' cleanups.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
