package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// The execution workloads measure what a user of the library runs: a task
// execution with its artifact, through the full service (App) on SQLite or
// PostgreSQL.
//
//   - w5, the execution table: a closed loop of no-op function task
//     executions (Tasks().Execute, then Scheduler().Wait) at concurrency
//     1, 8 and 64, beside the plain-SQL floor of the same lifecycle
//     (floor.go) in the same run; and, at concurrency 8, the same loop
//     with $execute sent over loopback HTTP ("ours http").
//   - w5s: the closed loop with a shell task running `true`, beside a
//     plain exec.Command("sh", "-c", "true") loop at the same concurrency.
//   - w5l: enqueue→done latency of executions at a steady rate.
//   - w5m: the heap in use after N and after 10×N finished executions.
const (
	wExec    = "w5"
	wShell   = "w5s"
	wLatency = "w5l"
	wMemory  = "w5m"

	cfgGo   = "go"   // ours through the Go API
	cfgHTTP = "http" // ours with $execute over HTTP
)

// closedLoop calls fn from c goroutines, each calling again as soon as
// its call returned, until limit calls were made (limit > 0) or window
// passed (window > 0), whichever comes first. It returns the calls that
// succeeded, the time until the last one returned and the first error.
func closedLoop(ctx context.Context, c, limit int, window time.Duration, fn func(ctx context.Context) error) (int, time.Duration, error) {
	var taken, ok atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	t0 := time.Now()
	for range c {
		wg.Go(func() {
			for ctx.Err() == nil {
				if limit > 0 && taken.Add(1) > int64(limit) {
					return
				}
				if window > 0 && time.Since(t0) >= window {
					return
				}
				if err := fn(ctx); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	return int(ok.Load()), time.Since(t0), firstErr
}

// execApp is the service the execution workloads drive, with one enabled
// task: the registered no-op function, or the shell command `true`.
type execApp struct {
	app    *chapkit.App
	taskID string
	srv    *http.Server
	client *http.Client
	base   string
	dials  atomic.Int64 // connections the HTTP client opened
	// viaGo makes submit use the Go API even when the HTTP server runs,
	// for the same-run reference of the "http" cell.
	viaGo bool
}

func newExecApp(ctx context.Context, spec Spec, shell bool) (*execApp, error) {
	reg := registry.New()
	if err := registry.Register(reg, "noop", func(context.Context, noParams) (int, error) { return 0, nil }); err != nil {
		return nil, err
	}
	app, err := newApp(ctx, spec, reg)
	if err != nil {
		return nil, err
	}
	in := task.In{Command: "noop", TaskType: task.TypePython, Enabled: true}
	if shell {
		in = task.In{Command: "true", TaskType: task.TypeShell, Enabled: true}
	}
	t, err := app.Tasks().Create(ctx, in)
	if err != nil {
		_ = app.Shutdown(context.WithoutCancel(ctx))
		return nil, err
	}
	e := &execApp{app: app, taskID: t.ID}
	if spec.Config == cfgHTTP {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			_ = app.Shutdown(context.WithoutCancel(ctx))
			return nil, err
		}
		e.srv = &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = e.srv.Serve(ln) }()
		e.base = "http://" + ln.Addr().String()
		// Keep-alive with an idle connection for every caller, so each
		// execution reuses one; dials counts the connections opened, which
		// shows whether that held. The time limit is the transport's wait
		// for the answer: a Client.Timeout would start a goroutine and a
		// timer for every request, which is the client's cost, not the
		// server's.
		var d net.Dialer
		e.client = &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256,
			ResponseHeaderTimeout: 30 * time.Second,
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				e.dials.Add(1)
				return d.DialContext(ctx, network, addr)
			}}}
	}
	return e, nil
}

// submit starts one execution: Tasks().Execute, or POST $execute over
// HTTP for configuration "http". It returns the job id.
func (e *execApp) submit(ctx context.Context) (string, error) {
	if e.srv != nil && !e.viaGo {
		return execute(ctx, e.client, e.base, e.taskID)
	}
	return e.app.Tasks().Execute(ctx, e.taskID)
}

// waitDone waits for job id to end, as a user of the Go API does, and
// fails unless it completed.
func (e *execApp) waitDone(ctx context.Context, id string) error {
	j, err := e.app.Scheduler().Wait(ctx, id)
	if err != nil {
		return err
	}
	if j.Status != job.StatusCompleted {
		msg := ""
		if j.Error != nil {
			msg = *j.Error
		}
		return fmt.Errorf("job %s ended %s: %s", id, j.Status, msg)
	}
	return nil
}

// one is one execution of the closed loop: submit, then wait.
func (e *execApp) one(ctx context.Context) error {
	id, err := e.submit(ctx)
	if err != nil {
		return err
	}
	return e.waitDone(ctx, id)
}

func (e *execApp) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if e.srv != nil {
		_ = e.srv.Shutdown(ctx)
	}
	_ = e.app.Shutdown(ctx)
}

// withoutArtifact counts completed jobs that name no artifact: a run that
// did not store what an execution stores shows here.
func (e *execApp) withoutArtifact(ctx context.Context) float64 {
	var n int64
	if err := e.app.DB().WithContext(ctx).Table("jobs").Where("status = ? AND artifact_id IS NULL", "completed").Count(&n).Error; err != nil {
		return -1
	}
	return float64(n)
}

// execLoopRun is w5 and w5s for ours: the closed loop over the window at
// the spec's concurrency (as many callers as the scheduler has slots).
// One round of c executions first, not counted, warms the service.
func execLoopRun(ctx context.Context, spec Spec) (map[string]float64, error) {
	e, err := newExecApp(ctx, spec, spec.Workload == wShell)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	if spec.Config == cfgHTTP {
		return e.httpBesideGo(ctx, spec)
	}
	c := max(spec.Concurrency, 1)
	if _, _, err := closedLoop(ctx, c, c, 0, e.one); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	cpu0 := cpuSeconds()
	done, el, err := closedLoop(ctx, c, 0, time.Duration(spec.Seconds*float64(time.Second)), e.one)
	if err != nil {
		return nil, err
	}
	cpu := cpuSeconds() - cpu0
	return map[string]float64{
		"jobs_per_s":        float64(done) / el.Seconds(),
		"done":              float64(done),
		"cpu_s_per_1k_jobs": cpu / float64(max(done, 1)) * 1000,
		"peak_rss_mb":       peakRSSMB(),
		"without_artifact":  e.withoutArtifact(ctx),
	}, nil
}

// httpSlice is the length of one slice of the "http" cell: short enough
// that both paths see the same load on a shared machine, whose load here
// swings several-fold within seconds, and long enough to hold dozens of
// executions, so the few in flight at a slice's end weigh little. A
// window shorter than four slices is cut into four.
const httpSlice = 125 * time.Millisecond

// httpBesideGo is the "http" cell of w5: the closed loop with $execute
// over loopback HTTP and the same loop through the Go API, on one service
// and one database in one process, in alternating slices (HTTP then Go,
// then Go then HTTP, and so on) of about httpSlice each, the window for
// each path.
// Both paths wait with Scheduler().Wait, so they differ only in how the
// execution is submitted; and both see the same machine load and the
// same database size, which separate cells run at other times do not.
// jobs_per_s is the HTTP rate, go_jobs_per_s the Go API rate, and
// http_go_ratio their ratio over the whole window.
func (e *execApp) httpBesideGo(ctx context.Context, spec Spec) (map[string]float64, error) {
	c := max(spec.Concurrency, 1)
	window := time.Duration(spec.Seconds * float64(time.Second))
	slices := max(int(window/httpSlice), 4)
	slice := window / time.Duration(slices)
	type path struct {
		viaGo   bool
		done    int
		elapsed time.Duration
		cpu     float64
	}
	h, g := &path{}, &path{viaGo: true}
	for _, p := range []*path{h, g} { // warm both paths, uncounted
		e.viaGo = p.viaGo
		if _, _, err := closedLoop(ctx, c, c, 0, e.one); err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
	}
	dials0 := e.dials.Load()
	for i := range 2 * slices {
		p := h
		if (i%2 == 1) != (i/2%2 == 1) {
			p = g
		}
		e.viaGo = p.viaGo
		cpu0 := cpuSeconds()
		done, el, err := closedLoop(ctx, c, 0, slice, e.one)
		if err != nil {
			return nil, err
		}
		p.cpu += cpuSeconds() - cpu0
		p.done += done
		p.elapsed += el
	}
	rate := func(p *path) float64 { return float64(p.done) / p.elapsed.Seconds() }
	return map[string]float64{
		"jobs_per_s":           rate(h),
		"go_jobs_per_s":        rate(g),
		"http_go_ratio":        rate(h) / rate(g),
		"done":                 float64(h.done),
		"go_done":              float64(g.done),
		"cpu_s_per_1k_jobs":    h.cpu / float64(max(h.done, 1)) * 1000,
		"go_cpu_s_per_1k_jobs": g.cpu / float64(max(g.done, 1)) * 1000,
		"conns_dialed":         float64(e.dials.Load() - dials0),
		"peak_rss_mb":          peakRSSMB(),
		"without_artifact":     e.withoutArtifact(ctx),
	}, nil
}

// shellTrueLoop is w5s's baseline: sh -c true from c goroutines over the
// window, no service.
func shellTrueLoop(ctx context.Context, spec Spec) (map[string]float64, error) {
	c := max(spec.Concurrency, 1)
	done, el, err := closedLoop(ctx, c, 0, time.Duration(spec.Seconds*float64(time.Second)), func(ctx context.Context) error {
		return exec.CommandContext(ctx, "sh", "-c", "true").Run()
	})
	if err != nil {
		return nil, err
	}
	return map[string]float64{"jobs_per_s": float64(done) / el.Seconds(), "done": float64(done)}, nil
}

// execLatency is w5l: executions submitted at a steady rate (each one's
// enqueue time is its scheduled slot, so a submitter that falls behind
// counts against the latency), each followed by a waiter as a user runs
// it; done is when Scheduler().Wait returned.
func execLatency(ctx context.Context, spec Spec) (map[string]float64, error) {
	e, err := newExecApp(ctx, spec, false)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	if _, _, err := closedLoop(ctx, 8, 8, 0, e.one); err != nil {
		return nil, fmt.Errorf("warm-up: %w", err)
	}
	total := int(spec.Rate * spec.Seconds)
	submitLat := make([]time.Duration, total)
	doneLat := make([]time.Duration, total)
	var errs atomic.Int64
	var firstErr atomic.Value
	var waiters sync.WaitGroup
	window := time.Duration(spec.Seconds * float64(time.Second))
	t0 := time.Now()
	submitted := pace(ctx, spec.Rate, window, 8, func(seq int, enq time.Time) {
		id, err := e.submit(ctx)
		submitLat[seq] = time.Since(enq)
		if err != nil {
			errs.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			return
		}
		waiters.Go(func() {
			wctx, cancel := context.WithTimeout(ctx, time.Duration(spec.CapSeconds*float64(time.Second)))
			defer cancel()
			if err := e.waitDone(wctx, id); err != nil {
				errs.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return
			}
			doneLat[seq] = time.Since(enq)
		})
	})
	wall := time.Since(t0)
	waiters.Wait()
	sl, dl := recorded(submitLat[:total]), recorded(doneLat[:total])
	m := map[string]float64{
		"target_rate":    spec.Rate,
		"submitted_rate": float64(submitted) / wall.Seconds(),
		"errors":         float64(errs.Load()),
		"not_done":       float64(total - len(dl)),
	}
	sl.into(m, "submit")
	dl.into(m, "done")
	if n := errs.Load(); n > 0 && len(dl) == 0 {
		return m, fmt.Errorf("%d executions failed, first: %v", n, firstErr.Load())
	}
	return m, nil
}

// heapInUse is the heap in use after two collections, in MiB.
func heapInUse() float64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapInuse) / (1 << 20)
}

// execMemory is w5m: the heap in use after spec.Jobs finished executions
// and after ten times as many, at the spec's concurrency. A service whose
// memory is flat in the number of finished jobs shows a ratio near 1.
func execMemory(ctx context.Context, spec Spec) (map[string]float64, error) {
	e, err := newExecApp(ctx, spec, false)
	if err != nil {
		return nil, err
	}
	defer e.close(ctx)
	c, n := max(spec.Concurrency, 1), spec.Jobs
	done, _, err := closedLoop(ctx, c, n, 0, e.one)
	if err != nil {
		return nil, err
	}
	h1 := heapInUse()
	more, _, err := closedLoop(ctx, c, 9*n, 0, e.one)
	if err != nil {
		return nil, err
	}
	h10 := heapInUse()
	if done+more != 10*n {
		return nil, errors.New("memory: the loops finished fewer executions than asked")
	}
	return map[string]float64{
		"heap_n_mb":   h1,
		"heap_10n_mb": h10,
		"heap_ratio":  h10 / h1,
		"done":        float64(done + more),
		"peak_rss_mb": peakRSSMB(),
	}, nil
}
