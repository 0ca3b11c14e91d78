package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

func benchApp(b *testing.B, conc int) *chapkit.App {
	b.Helper()
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench"}).
		WithDatabase(filepath.Join(b.TempDir(), "bench.db")).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: conc}).
		WithTasks(registry.New()).
		Build()
	if err != nil {
		b.Fatal(err)
	}
	if err := app.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { app.Shutdown(context.Background()) })
	return app
}

// BenchmarkShellTrue measures executions of `true` per second through the
// library (Execute + completion with its artifact) and through HTTP, at
// concurrency 2, 4 and 8, beside a plain exec loop with the same
// parallelism. Compare the ratios of one run.
func BenchmarkShellTrue(b *testing.B) {
	for _, conc := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("exec/c%d", conc), func(b *testing.B) {
			parallel(b, conc, func() {
				if err := exec.Command("sh", "-c", "true").Run(); err != nil {
					b.Error(err)
				}
			})
		})
		b.Run(fmt.Sprintf("library/c%d", conc), func(b *testing.B) {
			app := benchApp(b, conc)
			ctx := context.Background()
			tk, err := app.Tasks().Create(ctx, task.In{Command: "true", TaskType: task.TypeShell, Enabled: true})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			parallel(b, conc, func() {
				id, err := app.Tasks().Execute(ctx, tk.ID)
				if err == nil {
					_, err = app.Scheduler().Wait(ctx, id)
				}
				if err != nil {
					b.Error(err)
				}
			})
		})
		b.Run(fmt.Sprintf("http/c%d", conc), func(b *testing.B) {
			app := benchApp(b, conc)
			ctx := context.Background()
			srv := httptest.NewServer(app.Handler())
			defer srv.Close()
			tk, err := app.Tasks().Create(ctx, task.In{Command: "true", TaskType: task.TypeShell, Enabled: true})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			parallel(b, conc, func() {
				resp, err := http.Post(srv.URL+"/api/v1/tasks/"+tk.ID+"/$execute", "application/json", nil)
				if err != nil {
					b.Error(err)
					return
				}
				var out struct {
					JobID string `json:"job_id"`
				}
				decodeJSON(resp, &out)
				if _, err := app.Scheduler().Wait(ctx, out.JobID); err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// parallel runs b.N calls of f on n goroutines and reports calls per second.
func parallel(b *testing.B, n int, f func()) {
	b.Helper()
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				f()
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
}

func decodeJSON(resp *http.Response, into any) {
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(into)
}
