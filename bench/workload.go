package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// runChild runs one measurement in this (child) process and returns its
// metrics. Each run is a fresh process, so peak RSS and CPU are its own.
func runChild(ctx context.Context, spec Spec) (map[string]float64, error) {
	switch spec.Workload {
	case "w1":
		return burnDown(ctx, spec)
	case "w2":
		return steady(ctx, spec)
	case "w3":
		if spec.System == "exec" {
			return execLoop(ctx, spec)
		}
		if spec.System == "ours" {
			return oursShell(ctx, spec)
		}
		return peerShell(ctx, spec)
	case "w4n":
		return threeNodes(ctx, spec)
	case "w6":
		return httpSSE(ctx, spec)
	case wExec:
		if spec.System == sysFloor {
			return floorRun(ctx, spec)
		}
		return execLoopRun(ctx, spec)
	case wShell:
		if spec.System == "exec" {
			return shellTrueLoop(ctx, spec)
		}
		return execLoopRun(ctx, spec)
	case wLatency:
		return execLatency(ctx, spec)
	case wMemory:
		return execMemory(ctx, spec)
	}
	return nil, fmt.Errorf("unknown workload %q", spec.Workload)
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func peakRSSMB() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Maxrss) / 1024 // Linux reports KiB
}

// counter closes done when n completions were seen.
type counter struct {
	n, want int64
	done    chan struct{}
	once    sync.Once
}

func newCounter(want int) *counter { return &counter{want: int64(want), done: make(chan struct{})} }

func (c *counter) add() {
	if atomic.AddInt64(&c.n, 1) >= c.want {
		c.once.Do(func() { close(c.done) })
	}
}

func (c *counter) load() int { return int(atomic.LoadInt64(&c.n)) }

// waitCap waits for c or the cap; it reports whether all were seen.
func waitCap(c *counter, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// burnDown is W1: N no-op jobs inserted in bulk, then drained.
func burnDown(ctx context.Context, spec Spec) (map[string]float64, error) {
	c := newCounter(spec.Jobs)
	// When and where each job started and was seen done, to split a
	// concurrency-1 drain into its steps.
	started := make([]atomic.Int64, spec.Jobs)
	finished := make([]atomic.Int64, spec.Jobs)
	q, err := newQueue(ctx, spec, hooks{
		onStart: func(p payload) {
			if p.Seq >= 0 && p.Seq < spec.Jobs {
				started[p.Seq].Store(time.Now().UnixNano())
			}
		},
		onDone: func(p payload) {
			if p.Seq >= 0 && p.Seq < spec.Jobs {
				finished[p.Seq].Store(time.Now().UnixNano())
			}
			c.add()
		},
	})
	if err != nil {
		return nil, err
	}
	ps := make([]payload, spec.Jobs)
	for i := range ps {
		ps[i].Seq = i
	}
	t0 := time.Now()
	if err := q.insertBulk(ctx, ps); err != nil {
		return nil, err
	}
	insert := time.Since(t0)
	cpu0 := cpuSeconds()
	t1 := time.Now()
	if err := q.start(ctx); err != nil {
		return nil, err
	}
	waitCap(c, time.Duration(spec.CapSeconds*float64(time.Second)))
	done := c.load()
	if g, ok := q.(*goqiteQueue); ok && done == spec.Jobs {
		// goqite's runner deletes a message after its handler returned:
		// the drain ends when the table is empty.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
			if n, err := g.remaining(ctx); err == nil && n == 0 {
				break
			}
		}
	}
	elapsed := time.Since(t1)
	cpu := cpuSeconds() - cpu0
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := q.stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("stop: %w", err)
	}
	m := map[string]float64{
		"jobs_per_s":        float64(done) / elapsed.Seconds(),
		"cpu_s_per_1k_jobs": cpu / float64(max(done, 1)) * 1000,
		"peak_rss_mb":       peakRSSMB(),
		"done":              float64(done),
		"insert_s":          insert.Seconds(),
		"drain_s":           elapsed.Seconds(),
	}
	if spec.Engine != enginePG {
		m["db_size_mb"] = float64(dbSize(spec.DB)) / (1 << 20)
	}
	if spec.Concurrency == 1 {
		// At concurrency 1 the jobs run in submission order: the gap from
		// one job seen done to the next one's start is the hand-over
		// (claim or fetch), start to done is the run plus storing the
		// completion. A negative gap means the next job started before
		// the previous one's completion was stored.
		var gap, run latencies
		var gapNeg int
		for i := 1; i < spec.Jobs; i++ {
			s0, d0, s1, d1 := started[i-1].Load(), finished[i-1].Load(), started[i].Load(), finished[i].Load()
			if s0 == 0 || d0 == 0 || s1 == 0 || d1 == 0 {
				break
			}
			if s1 < d0 {
				gapNeg++
			} else {
				gap = append(gap, time.Duration(s1-d0))
			}
			run = append(run, time.Duration(d1-s1))
		}
		m["c1_handover_p50_ms"] = gap.pct(50)
		m["c1_start_to_done_p50_ms"] = run.pct(50)
		m["c1_started_before_previous_done"] = float64(gapNeg) / float64(max(len(run), 1))
	}
	return m, nil
}

// pace calls submit for each slot i at t0 + i/rate until d has passed,
// from a few goroutines so one slow insert does not hold back the rest.
// Each slot's enqueue time is its scheduled time, so a submitter that
// falls behind shows up in the latencies (no coordinated omission).
func pace(ctx context.Context, rate float64, d time.Duration, workers int, submit func(seq int, enq time.Time)) (submitted int) {
	t0 := time.Now()
	total := int(rate * d.Seconds())
	var next, count atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= total || ctx.Err() != nil {
					return
				}
				at := t0.Add(time.Duration(float64(i) / rate * float64(time.Second)))
				if w := time.Until(at); w > 0 {
					time.Sleep(w)
				}
				submit(i, at)
				count.Add(1)
			}
		})
	}
	wg.Wait()
	return int(count.Load())
}

// steady is W2: a fixed submission rate for Seconds, concurrency 8.
func steady(ctx context.Context, spec Spec) (map[string]float64, error) {
	total := int(spec.Rate * spec.Seconds)
	startLat := make([]time.Duration, total)
	doneLat := make([]time.Duration, total)
	c := newCounter(total)
	q, err := newQueue(ctx, spec, hooks{
		onStart: func(p payload) {
			if p.Seq < total {
				startLat[p.Seq] = time.Since(time.Unix(0, p.Enq))
			}
		},
		onDone: func(p payload) {
			if p.Seq < total {
				doneLat[p.Seq] = time.Since(time.Unix(0, p.Enq))
			}
			c.add()
		},
	})
	if err != nil {
		return nil, err
	}
	if err := q.start(ctx); err != nil {
		return nil, err
	}
	var submitErrs atomic.Int64
	window := time.Duration(spec.Seconds * float64(time.Second))
	t0 := time.Now()
	submitted := pace(ctx, spec.Rate, window, 8, func(seq int, enq time.Time) {
		if q.submit(ctx, payload{Seq: seq, Enq: enq.UnixNano()}) != nil {
			submitErrs.Add(1)
		}
	})
	if w := time.Until(t0.Add(window)); w > 0 {
		time.Sleep(w)
	}
	doneInWindow := c.load()
	wall := time.Since(t0)
	waitCap(c, time.Duration(spec.CapSeconds*float64(time.Second)))
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = q.stop(stopCtx)
	sl, dl := recorded(startLat[:total]), recorded(doneLat[:total])
	m := map[string]float64{
		"target_rate":    spec.Rate,
		"submitted_rate": float64(submitted) / wall.Seconds(),
		"achieved_rate":  float64(doneInWindow) / wall.Seconds(),
		"backlog_at_end": float64(submitted - doneInWindow),
		"submit_errors":  float64(submitErrs.Load()),
		"not_done":       float64(total - len(dl)),
	}
	sl.into(m, "start")
	dl.into(m, "done")
	return m, nil
}

// execLoop is W3's baseline: the command run by exec.Command from
// Concurrency goroutines, no queue.
func execLoop(ctx context.Context, spec Spec) (map[string]float64, error) {
	var next atomic.Int64
	var failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for range spec.Concurrency {
		wg.Go(func() {
			for int(next.Add(1)) <= spec.Jobs {
				if _, err := runShell(ctx); err != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(t0)
	return map[string]float64{"jobs_per_s": float64(spec.Jobs) / el.Seconds(), "failed": float64(failed.Load())}, nil
}

// peerShell is W3 for River and goqite: submit the jobs, time until all
// are stored as done.
func peerShell(ctx context.Context, spec Spec) (map[string]float64, error) {
	c := newCounter(spec.Jobs)
	q, err := newQueue(ctx, spec, hooks{onDone: func(payload) { c.add() }})
	if err != nil {
		return nil, err
	}
	if err := q.start(ctx); err != nil {
		return nil, err
	}
	t0 := time.Now()
	for i := range spec.Jobs {
		if err := q.submit(ctx, payload{Seq: i, Shell: true}); err != nil {
			return nil, err
		}
	}
	waitCap(c, time.Duration(spec.CapSeconds*float64(time.Second)))
	el := time.Since(t0)
	done := c.load()
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	_ = q.stop(stopCtx)
	return map[string]float64{"jobs_per_s": float64(done) / el.Seconds(), "done": float64(done)}, nil
}

// threeNodes is W4 on PostgreSQL: three nodes (three schedulers, or three
// River clients, each with its own connection pool) in this process share
// one database and drain a backlog of N no-op jobs inserted before they
// start, at Concurrency workers each. It counts every start and every
// completion per job, so a job run or completed twice shows.
func threeNodes(ctx context.Context, spec Spec) (map[string]float64, error) {
	const nodes = 3
	starts := make([]atomic.Int32, spec.Jobs)
	dones := make([]atomic.Int32, spec.Jobs)
	var perNode [nodes]atomic.Int64
	c := newCounter(spec.Jobs)
	qs := make([]queue, nodes)
	for i := range nodes {
		q, err := newQueue(ctx, spec, hooks{
			onStart: func(p payload) {
				if p.Seq >= 0 && p.Seq < spec.Jobs {
					starts[p.Seq].Add(1)
				}
			},
			onDone: func(p payload) {
				if p.Seq >= 0 && p.Seq < spec.Jobs && dones[p.Seq].Add(1) == 1 {
					c.add()
				}
				perNode[i].Add(1)
			},
		})
		if err != nil {
			return nil, err
		}
		qs[i] = q
	}
	ps := make([]payload, spec.Jobs)
	for i := range ps {
		ps[i].Seq = i
	}
	if err := qs[0].insertBulk(ctx, ps); err != nil {
		return nil, err
	}
	cpu0 := cpuSeconds()
	t0 := time.Now()
	for _, q := range qs {
		if err := q.start(ctx); err != nil {
			return nil, err
		}
	}
	waitCap(c, time.Duration(spec.CapSeconds*float64(time.Second)))
	elapsed := time.Since(t0)
	cpu := cpuSeconds() - cpu0
	done := c.load()
	stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var stopErr error
	for _, q := range qs {
		if err := q.stop(stopCtx); err != nil && !errors.Is(err, context.Canceled) && stopErr == nil {
			stopErr = err
		}
	}
	if stopErr != nil {
		return nil, fmt.Errorf("stop: %w", stopErr)
	}
	dupRuns, dupDone := 0, 0
	for i := range spec.Jobs {
		dupRuns += max(0, int(starts[i].Load())-1)
		dupDone += max(0, int(dones[i].Load())-1)
	}
	minShare := 1.0
	for i := range nodes {
		minShare = min(minShare, float64(perNode[i].Load())/float64(max(done, 1)))
	}
	return map[string]float64{
		"jobs_per_s":        float64(done) / elapsed.Seconds(),
		"cpu_s_per_1k_jobs": cpu / float64(max(done, 1)) * 1000,
		"done":              float64(done),
		"duplicate_runs":    float64(dupRuns),
		"completed_twice":   float64(dupDone),
		"min_node_share":    minShare,
		"drain_s":           elapsed.Seconds(),
	}, nil
}
