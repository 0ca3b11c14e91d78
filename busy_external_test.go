package chapkit_test

import (
	"database/sql"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // the outside process's driver

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/registry"
)

// TestLockedDatabaseIsTransient: while another process holds SQLite's
// write lock, $execute answers 503 with Retry-After in the job routes'
// {"detail"} family (never a 4xx, never Go operation names), and /health
// answers 503 unhealthy within its own deadline instead of waiting for
// the lock; both recover when the lock is released.
func TestLockedDatabaseIsTransient(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.db")
	app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "busy"}).
		WithDatabase(path, chapkit.DatabaseOptions{BusyTimeout: 3 * time.Second}).
		WithHealth().WithArtifacts(artifact.Hierarchy{Name: "x"}).WithJobs(chapkit.JobsConfig{}).WithTasks(registry.New()))
	h := app.Handler()
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command": "true"}`, "")
	taskID := object(t, rec.Body.Bytes())["id"].(string)

	outside, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer outside.Close()
	holder, err := outside.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	released := false
	release := func() {
		if !released {
			released = true
			_, _ = holder.ExecContext(t.Context(), "ROLLBACK")
			_ = holder.Close()
		}
	}
	defer release()

	executed := make(chan *testkitResponse, 1)
	go func() {
		r := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", "", "")
		executed <- &testkitResponse{code: r.Code, retryAfter: r.Header().Get("Retry-After"), ct: r.Header().Get("Content-Type"), body: r.Body.String()}
	}()
	// The execution's write waits for the lock on the service's only
	// connection; /health must not wait with it.
	var health *testkitResponse
	testkit.Eventually(t, 10*time.Second, "/health to report the stuck database", func() bool {
		start := time.Now()
		r := testkit.Request(t, h, http.MethodGet, "/health", "", "")
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("/health took %v, want its own deadline of about 2 s", took)
		}
		health = &testkitResponse{code: r.Code, body: r.Body.String()}
		return r.Code == http.StatusServiceUnavailable
	})
	if !strings.Contains(health.body, `"status":"unhealthy"`) {
		t.Errorf("/health body = %s, want unhealthy", health.body)
	}
	got := <-executed
	if got.code != http.StatusServiceUnavailable || got.retryAfter == "" || !strings.HasPrefix(got.ct, "application/json") ||
		!strings.Contains(got.body, `"detail"`) || strings.Contains(got.body, "job.") || strings.Contains(got.body, "Scheduler") {
		t.Errorf("$execute under the lock = %d Retry-After %q %s %s; want 503 with Retry-After and a plain detail", got.code, got.retryAfter, got.ct, got.body)
	}

	release()
	rec = testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", "", "")
	if rec.Code != http.StatusAccepted {
		t.Errorf("$execute after the lock = %d %s, want 202", rec.Code, rec.Body.String())
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/health", "", ""); rec.Code != http.StatusOK {
		t.Errorf("/health after the lock = %d %s, want 200", rec.Code, rec.Body.String())
	}
}

type testkitResponse struct {
	code           int
	retryAfter, ct string
	body           string
}
