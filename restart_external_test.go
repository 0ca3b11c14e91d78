package chapkit_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// TestJobsSurviveRestart: job records live in the database (docs/jobs.md);
// a drain that runs out of time records the running job as interrupted
// and leaves the queued one pending, and the next start runs it.
func TestJobsSurviveRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "durable.db")
	build := func() *chapkit.App {
		app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
			WithDatabase(path).
			WithArtifacts(testHierarchy).
			WithJobs(chapkit.JobsConfig{MaxConcurrency: 1, DrainTimeout: 200 * time.Millisecond}).
			WithTasks(registry.New()).
			Build()
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return app
	}

	first := build()
	h := first.Handler()
	done := waitJob(t, h, execute(t, h, shellTask(t, h, "echo before")))
	long := execute(t, h, shellTask(t, h, "sleep 987610"))
	pgid := waitRunning(t, first, long)
	queued := execute(t, h, shellTask(t, h, "echo after restart"))
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if groupAlive(t, pgid) {
		t.Errorf("process group %d of the interrupted job survived the drain", pgid)
	}

	second := build()
	t.Cleanup(func() { second.Shutdown(context.Background()) })
	h = second.Handler()
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+done["id"].(string), "", ""), http.StatusOK, ctJSON, done)
	interrupted := getJob(t, h, long)
	if interrupted["status"] != "failed" || interrupted["error"] != "interrupted: the service stopped while the job was running" ||
		interrupted["finished_at"] == nil {
		t.Errorf("interrupted job = %v", interrupted)
	}
	requeued := waitJob(t, h, queued)
	if requeued["status"] != "completed" {
		t.Fatalf("requeued job = %v", requeued)
	}
	if data := artifactData(t, h, requeued["artifact_id"].(string)); data["stdout"] != "after restart\n" {
		t.Errorf("requeued artifact = %v", data)
	}
}

// TestPendingBound: past JobsConfig.MaxPending waiting jobs, $execute is
// 503 problem+json with Retry-After and creates no job (docs/limits.md).
func TestPendingBound(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: 1, MaxPending: 1})
	})
	h := app.Handler()
	blocker := execute(t, h, shellTask(t, h, "sleep 987611"))
	waitRunning(t, app, blocker)
	id := shellTask(t, h, "echo queued")
	execute(t, h, id)
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "")
	expect(t, rec, http.StatusServiceUnavailable, ctProblem, nil)
	if rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if n := len(array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Body.Bytes())); n != 2 {
		t.Errorf("%d jobs, want 2 (the refused one is not stored)", n)
	}
	if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+blocker, "", ""); rec.Code != http.StatusNoContent {
		t.Errorf("DELETE blocker: %d", rec.Code)
	}
}
