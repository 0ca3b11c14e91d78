package chapkit_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// benchApp starts a service on a SQLite file with a no-op function task;
// tracing, when set, is its tracer provider (nil: WithTracing not called).
func benchApp(b *testing.B, tracing func(*chapkit.ServiceBuilder)) (*chapkit.App, string) {
	b.Helper()
	reg := registry.New()
	registry.MustRegister(reg, "noop", func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	sb := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench"}).
		WithDatabase(filepath.Join(b.TempDir(), "bench.db")).
		WithArtifacts(testHierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 1}).
		WithTasks(reg)
	if tracing != nil {
		tracing(sb)
	}
	app, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Shutdown(context.Background()) })
	tk, err := app.Tasks().Create(context.Background(), task.In{Command: "noop", TaskType: task.TypePython, Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	return app, tk.ID
}

// benchRequests measures GET /api/v1/info through the app's handler.
func benchRequests(b *testing.B, app *chapkit.App) {
	h := app.Handler()
	req := httptest.NewRequest(http.MethodGet, "/api/v1/info", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d", rec.Code)
		}
	}
}

// benchJobs measures one no-op function execution at a time, from
// Execute to the stored completion.
func benchJobs(b *testing.B, app *chapkit.App, taskID string) {
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		id, err := app.Tasks().Execute(ctx, taskID)
		if err == nil {
			_, err = app.Scheduler().Wait(ctx, id)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTracingOff is the request and job paths without WithTracing
// (docs/tracing.md reports the numbers).
func BenchmarkTracingOff(b *testing.B) {
	b.Run("request", func(b *testing.B) {
		app, _ := benchApp(b, nil)
		benchRequests(b, app)
	})
	b.Run("job", func(b *testing.B) {
		app, id := benchApp(b, nil)
		benchJobs(b, app, id)
	})
}
