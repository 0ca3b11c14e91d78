package chapkit_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// benchExecApp starts the service the execution benchmarks drive: a
// SQLite file, artifacts, jobs at concurrency 8 and one no-op function
// task. It returns the app and the task's id.
func benchExecApp(b *testing.B, mods ...func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder) (*chapkit.App, string) {
	b.Helper()
	reg := registry.New()
	type none struct{}
	if err := registry.Register(reg, "noop", func(context.Context, none) (int, error) { return 0, nil }); err != nil {
		b.Fatal(err)
	}
	bld := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench"}).
		WithDatabase(filepath.Join(b.TempDir(), "bench.db")).
		WithArtifacts(testHierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 8, DrainTimeout: 5 * time.Second}).
		WithTasks(reg)
	for _, m := range mods {
		bld = m(bld)
	}
	app := apptest.Start(b, bld)
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
	// handler calls the Echo app in process, without a connection: what
	// the routing, middleware and handler add to Execute; "ops" adds
	// metrics, request logging (to a logger that drops every record) and
	// an API key.
	handler := func(b *testing.B, key string, mods ...func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder) {
		app, taskID := benchExecApp(b, mods...)
		h := app.Handler()
		target := "/api/v1/tasks/" + taskID + "/$execute"
		run(b, func(ctx context.Context) (string, error) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequestWithContext(ctx, http.MethodPost, target, nil)
			if key != "" {
				req.Header.Set("X-API-Key", key)
			}
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusAccepted {
				return "", &statusError{rec.Code}
			}
			var body struct {
				JobID string `json:"job_id"`
			}
			err := json.Unmarshal(rec.Body.Bytes(), &body)
			return body.JobID, err
		}, app)
	}
	b.Run("handler", func(b *testing.B) { handler(b, "") })
	b.Run("handler-ops", func(b *testing.B) {
		handler(b, "bench-key", func(bld *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
			return bld.WithMonitoring().WithLogging().WithLogger(slog.New(slog.DiscardHandler)).
				WithAuth(chapkit.AuthConfig{APIKeys: []string{"bench-key"}})
		})
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

// TestExecuteResponseBytes pins the 202 of $execute byte for byte over a
// real connection: the compact body, its content type and the absolute
// Location of the job, built from the request's scheme and host.
func TestExecuteResponseBytes(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	srv := serve(t, app.Handler())
	taskID := shellTask(t, app.Handler(), "true")
	resp, err := srv.Client().Post(srv.URL+"/api/v1/tasks/"+taskID+"/$execute", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(raw, &body); err != nil || len(body.JobID) != 26 {
		t.Fatalf("body %q: job_id %q, %v", raw, body.JobID, err)
	}
	type answer struct {
		Status                      int
		ContentType, Location, Body string
	}
	got := answer{resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), string(raw)}
	want := answer{http.StatusAccepted, ctJSON, srv.URL + "/api/v1/jobs/" + body.JobID,
		`{"job_id":"` + body.JobID + `","message":"Task submitted for execution. Job ID: ` + body.JobID + `"}`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("$execute answer (-want +got):\n%s", diff)
	}
	if _, err := app.Scheduler().Wait(t.Context(), body.JobID); err != nil {
		t.Fatal(err)
	}
}
