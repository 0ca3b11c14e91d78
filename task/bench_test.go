package task

import (
	"context"
	"database/sql"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
)

// The benchmarks below measure no-op function executions with their
// artifacts (Execute, then Wait), beside the same lifecycle in plain SQL on
// the same kind of database. Besides the rate they report the process's
// CPU time per execution, which a machine shared with other work disturbs
// far less than the rate: compare the cpu-us/op of one run.

// cpuTime returns the CPU time (user + system) the process used so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// closedLoop runs f b.N times from conc goroutines and reports the rate
// and the CPU time per call.
func closedLoop(b *testing.B, conc int, f func() error) {
	b.Helper()
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	cpu0 := cpuTime(b)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for range work {
				if err := f(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

func BenchmarkExecuteNoop(b *testing.B) {
	for _, conc := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("floor/c%d", conc), func(b *testing.B) { benchFloor(b, conc) })
		b.Run(fmt.Sprintf("library/c%d", conc), func(b *testing.B) {
			tb := setup(b, setupOpts{maxConcurrency: conc, register: func(tb testing.TB, reg *registry.Registry) {
				registry.MustRegister(reg, "noop", func(context.Context, struct{}) (struct{}, error) { return struct{}{}, nil })
			}})
			ctx := context.Background()
			tk := mustCreate(b, tb.mgr, `{"command": "noop", "task_type": "python"}`)
			closedLoop(b, conc, func() error {
				id, err := tb.mgr.Execute(ctx, tk.ID)
				if err != nil {
					return err
				}
				_, err = tb.sched.Wait(ctx, id)
				return err
			})
		})
	}
}

// benchFloor runs the lifecycle of an execution in plain SQL on one
// connection, each transaction carrying conc jobs: insert the jobs; claim
// them; store their artifacts and complete them.
func benchFloor(b *testing.B, conc int) {
	tb := setup(b, setupOpts{})
	sqlDB, err := tb.db.DB()
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	node := tb.sched.NodeID()
	data := []byte(`{"task":{"id":"01K000000000000000000000000","command":"noop","task_type":"python","parameters":null,"created_at":"2025-01-01T00:00:00Z","updated_at":"2025-01-01T00:00:00Z"},"result":{},"error":null,"duration_seconds":0.00001}`)
	inTx := func(f func(tx *sql.Tx) error) {
		tx, err := sqlDB.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := f(tx); err != nil {
			_ = tx.Rollback()
			b.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for done := 0; done < b.N; done += conc {
		n := min(conc, b.N-done)
		ids := make([]string, n)
		for i := range ids {
			ids[i] = wire.NewID()
		}
		now := wire.Now()
		inTx(func(tx *sql.Tx) error {
			for _, id := range ids {
				if _, err := tx.Exec(`INSERT INTO jobs (id, kind, args, status, submitted_at, attempt) VALUES (?, ?, ?, 'pending', ?, 1)`,
					id, JobKind, `{"task_id":"x","task_type":"python"}`, now); err != nil {
					return err
				}
			}
			return nil
		})
		inTx(func(tx *sql.Tx) error {
			for _, id := range ids {
				if _, err := tx.Exec(`UPDATE jobs SET status = 'running', started_at = ?, node = ? WHERE id = ? AND status = 'pending'`, now, node, id); err != nil {
					return err
				}
			}
			return nil
		})
		inTx(func(tx *sql.Tx) error {
			for _, id := range ids {
				art := wire.NewID()
				if _, err := tx.Exec(`INSERT INTO artifacts (id, data, level, tags, created_at, updated_at) VALUES (?, ?, 0, '[]', ?, ?)`, art, data, now, now); err != nil {
					return err
				}
				if _, err := tx.Exec(`UPDATE jobs SET status = 'completed', finished_at = ?, artifact_id = ? WHERE id = ? AND status = 'running' AND node = ?`, now, art, id, node); err != nil {
					return err
				}
			}
			return nil
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "execs/s")
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-us/op")
}

// BenchmarkExecuteShellTrue runs the shell task `true` through the task
// path beside a plain exec loop of the same command at the same
// concurrency; compare their execs/s within one run.
func BenchmarkExecuteShellTrue(b *testing.B) {
	for _, conc := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("exec/c%d", conc), func(b *testing.B) {
			closedLoop(b, conc, func() error { return exec.Command("sh", "-c", "true").Run() })
		})
		b.Run(fmt.Sprintf("library/c%d", conc), func(b *testing.B) {
			tb := setup(b, setupOpts{maxConcurrency: conc})
			ctx := context.Background()
			tk := mustCreate(b, tb.mgr, `{"command": "true", "task_type": "shell"}`)
			closedLoop(b, conc, func() error {
				id, err := tb.mgr.Execute(ctx, tk.ID)
				if err != nil {
					return err
				}
				j, err := tb.sched.Wait(ctx, id)
				if err == nil && j.Status != job.StatusCompleted {
					err = fmt.Errorf("job %s ended %s", id, j.Status)
				}
				return err
			})
		})
	}
}
