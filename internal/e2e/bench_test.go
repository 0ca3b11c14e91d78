package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/internal/wire"
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

func noopApp(b *testing.B, conc int) (*chapkit.App, string) {
	b.Helper()
	reg := registry.New()
	registry.MustRegister(reg, "noop", func(ctx context.Context, _ struct{}) (struct{}, error) { return struct{}{}, nil })
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench"}).
		WithDatabase(filepath.Join(b.TempDir(), "bench.db")).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: conc}).
		WithTasks(reg).
		Build()
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

// BenchmarkFunctionNoop measures no-op function executions per second
// through the library (Execute, then Wait for the completion with its
// artifact) at concurrency 1, 8 and 64, beside the plain SQLite commit rate
// (one-row INSERT transactions on the same kind of database).
func BenchmarkFunctionNoop(b *testing.B) {
	b.Run("sqlite-commit", func(b *testing.B) {
		db, err := sqlitedb.Open(filepath.Join(b.TempDir(), "plain.db"), sqlitedb.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer func() { s, _ := db.DB(); s.Close() }()
		if err := db.Exec("CREATE TABLE t (id TEXT PRIMARY KEY, v TEXT)").Error; err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			err := db.Transaction(func(tx *gorm.DB) error {
				return tx.Exec("INSERT INTO t (id, v) VALUES (?, ?)", wire.NewID(), "x").Error
			})
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
	})
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("library/c%d", conc), func(b *testing.B) {
			app, taskID := noopApp(b, conc)
			ctx := context.Background()
			b.ResetTimer()
			parallel(b, conc, func() {
				id, err := app.Tasks().Execute(ctx, taskID)
				if err == nil {
					_, err = app.Scheduler().Wait(ctx, id)
				}
				if err != nil {
					b.Error(err)
				}
			})
		})
	}
}

// BenchmarkFunctionLatency submits no-op function executions at a steady
// 500 per second and reports submit→completed latency percentiles (the
// completion is observed through the job's event subscription).
func BenchmarkFunctionLatency(b *testing.B) {
	const rate = 500
	app, taskID := noopApp(b, 8)
	ctx := context.Background()
	n := max(b.N, 1000)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	b.ResetTimer()
	for i := range n {
		<-tick.C
		began := time.Now()
		id, err := app.Tasks().Execute(ctx, taskID)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := app.Scheduler().Wait(ctx, id); err != nil {
				b.Error(err)
			}
			lat[i] = time.Since(began)
		}()
	}
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}
