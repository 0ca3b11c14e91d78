package main

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// W4: 500 two-second jobs, the worker process SIGKILLed 3 s after it
// started working, then started again. The worker appends "S <seq>" when a
// job's work begins and "D <seq>" when its completion is stored, to a file
// opened O_APPEND (each line one write, so a kill never tears one).

const (
	crashJobs        = 500
	crashJobMS       = 2000
	crashKillAfter   = 3 * time.Second
	crashConcurrency = 200
)

// crashWorker is the child side: insert (first start only), work, and
// say "ready" on stdout once working.
func crashWorker(ctx context.Context, spec Spec) error {
	f, err := os.OpenFile(spec.RunLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	var mu sync.Mutex
	logLine := func(tag string, p payload) {
		mu.Lock()
		defer mu.Unlock()
		_, _ = fmt.Fprintf(f, "%s %d\n", tag, p.Seq)
	}
	q, err := newQueue(ctx, spec, hooks{
		onStart: func(p payload) { logLine("S", p) },
		onDone:  func(p payload) { logLine("D", p) },
	})
	if err != nil {
		return err
	}
	if spec.Insert {
		ps := make([]payload, spec.Jobs)
		for i := range ps {
			ps[i] = payload{Seq: i, SleepMS: crashJobMS}
		}
		if err := q.insertBulk(ctx, ps); err != nil {
			return err
		}
	}
	if err := q.start(ctx); err != nil {
		return err
	}
	fmt.Println("ready")
	<-ctx.Done()
	return nil
}

// terminalQuery counts the jobs a system considers finished for good.
func terminalQuery(system string) string {
	switch system {
	case "ours":
		return `select count(*) from jobs where status in ('completed','failed','canceled')`
	case "river":
		return `select count(*) from river_job where state in ('completed','discarded','cancelled')`
	}
	// goqite: a deleted message is done; one received 3 times is dead.
	return fmt.Sprintf(`select %d - count(*) from goqite where received < 3`, crashJobs)
}

// crashRun is the parent side of one W4 run.
func crashRun(ctx context.Context, self string, spec Spec) (map[string]float64, error) {
	spec.Jobs = crashJobs
	spec.Concurrency = crashConcurrency
	spec.RunLog = spec.DB + ".runlog"
	first := spec
	first.Insert = true
	c1, err := startWorker(ctx, self, first)
	if err != nil {
		return nil, err
	}
	time.Sleep(crashKillAfter)
	_ = c1.Process.Kill()
	_ = c1.Wait()

	restart := time.Now()
	c2, err := startWorker(ctx, self, spec)
	if err != nil {
		return nil, err
	}
	defer func() { _ = c2.Process.Kill(); _ = c2.Wait() }()
	ready := time.Since(restart)

	db, err := sql.Open("sqlite3", "file:"+spec.DB+"?_busy_timeout=30000")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	capDur := time.Duration(spec.CapSeconds * float64(time.Second))
	terminal, allTerminal := 0, -1.0
	for time.Since(restart) < capDur {
		if err := db.QueryRowContext(ctx, terminalQuery(spec.System)).Scan(&terminal); err == nil && terminal >= crashJobs {
			allTerminal = time.Since(restart).Seconds()
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Let completions in flight reach the run log before counting.
	time.Sleep(200 * time.Millisecond)
	starts, dones, err := readRunLog(spec.RunLog)
	if err != nil {
		return nil, err
	}
	lost, dupRuns, dupDone := 0, 0, 0
	for i := range crashJobs {
		if dones[i] == 0 {
			lost++
		}
		if dones[i] > 1 {
			dupDone++
		}
		dupRuns += max(0, starts[i]-1)
	}
	m := map[string]float64{
		"lost_jobs":           float64(lost),
		"duplicate_runs":      float64(dupRuns),
		"completed_twice":     float64(dupDone),
		"not_terminal_at_cap": float64(crashJobs - terminal),
		"restart_ready_s":     ready.Seconds(),
	}
	if allTerminal >= 0 {
		m["time_to_all_terminal_s"] = allTerminal
	} else {
		m["time_to_all_terminal_s"] = -1 // not within the cap
	}
	return m, nil
}

// startWorker runs this binary in worker mode and waits for "ready".
func startWorker(ctx context.Context, self string, spec Spec) (*exec.Cmd, error) {
	raw, err := encodeSpec(spec)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, self, "-crash-worker", raw)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, fmt.Errorf("worker did not start: %q %v", line, err)
	}
	return cmd, nil
}

func readRunLog(path string) (starts, dones [crashJobs]int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return starts, dones, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var tag string
		var seq int
		if _, err := fmt.Sscanf(sc.Text(), "%s %d", &tag, &seq); err != nil || seq < 0 || seq >= crashJobs {
			continue
		}
		if tag == "S" {
			starts[seq]++
		} else {
			dones[seq]++
		}
	}
	return starts, dones, sc.Err()
}
