package chapkit_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// benchExecApp starts the service the execution benchmarks drive: a
// SQLite file, artifacts, jobs at concurrency 8 and one no-op function
// task. It returns the app and the task's id.
func benchExecApp(b *testing.B) (*chapkit.App, string) {
	b.Helper()
	reg := registry.New()
	type none struct{}
	if err := registry.Register(reg, "noop", func(context.Context, none) (int, error) { return 0, nil }); err != nil {
		b.Fatal(err)
	}
	app := apptest.Start(b, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench"}).
		WithDatabase(filepath.Join(b.TempDir(), "bench.db")).
		WithArtifacts(testHierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 8, DrainTimeout: 5 * time.Second}).
		WithTasks(reg))
	t, err := app.Tasks().Create(b.Context(), task.In{Command: "noop", TaskType: task.TypePython, Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	return app, t.ID
}

// BenchmarkExecute is one execution of a no-op function task from 8
// callers at once, submitted through the Go API (Tasks().Execute) or as
// POST $execute over loopback HTTP with a keep-alive client, and in both
// cases waited for with Scheduler().Wait. The ratio of the two is the
// cost of the HTTP layer on the way in.
func BenchmarkExecute(b *testing.B) {
	run := func(b *testing.B, submit func(ctx context.Context) (string, error), app *chapkit.App) {
		// RunParallel starts parallelism × GOMAXPROCS callers: 8 in all.
		b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			ctx := context.Background()
			for pb.Next() {
				id, err := submit(ctx)
				if err != nil {
					b.Error(err)
					return
				}
				j, err := app.Scheduler().Wait(ctx, id)
				if err != nil || j.Status != job.StatusCompleted {
					b.Errorf("job %s: %v, %v", id, j, err)
					return
				}
			}
		})
	}
	b.Run("go", func(b *testing.B) {
		app, taskID := benchExecApp(b)
		run(b, func(ctx context.Context) (string, error) { return app.Tasks().Execute(ctx, taskID) }, app)
	})
	b.Run("http", func(b *testing.B) {
		app, taskID := benchExecApp(b)
		srv := serve(b, app.Handler())
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		b.Cleanup(client.CloseIdleConnections)
		url := srv.URL + "/api/v1/tasks/" + taskID + "/$execute"
		run(b, func(ctx context.Context) (string, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
			if err != nil {
				return "", err
			}
			resp, err := client.Do(req)
			if err != nil {
				return "", err
			}
			defer resp.Body.Close()
			var body struct {
				JobID string `json:"job_id"`
			}
			err = json.NewDecoder(resp.Body).Decode(&body)
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusAccepted {
				return "", &statusError{resp.StatusCode}
			}
			return body.JobID, err
		}, app)
	})
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "$execute: status " + http.StatusText(e.code) }
