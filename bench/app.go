package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// newApp builds the full service: artifacts, jobs and tasks on a SQLite
// file, as an application would (defaults but the concurrency).
func newApp(ctx context.Context, spec Spec, reg *registry.Registry) (*chapkit.App, error) {
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "bench", Version: "0"}).
		WithDatabase(spec.DB, chapkit.DatabaseOptions{Synchronous: spec.Synchronous}).
		WithArtifacts(artifact.Hierarchy{Name: "bench", LevelLabels: map[int]string{0: "execution"}}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: spec.Concurrency}).
		WithTasks(reg).
		Build()
	if err != nil {
		return nil, err
	}
	if err := app.Start(ctx); err != nil {
		return nil, err
	}
	return app, nil
}

// countTerminal counts jobs that ended; the harness polls it because the
// App keeps its job observer to itself.
func countTerminal(ctx context.Context, app *chapkit.App) (int64, error) {
	var n int64
	err := app.DB().WithContext(ctx).Table("jobs").Where("status IN ?", []string{"completed", "failed", "canceled"}).Count(&n).Error
	return n, err
}

// oursShell is W3 for ours: a real task execution. The shell task runs
// through the library's shell runner and its artifact (stdout, stderr,
// exit code) is stored in the job's completion transaction.
func oursShell(ctx context.Context, spec Spec) (map[string]float64, error) {
	app, err := newApp(ctx, spec, registry.New())
	if err != nil {
		return nil, err
	}
	defer func() { _ = app.Shutdown(context.WithoutCancel(ctx)) }()
	t, err := app.Tasks().Create(ctx, task.In{Command: shellCommand, TaskType: task.TypeShell, Enabled: true})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	for range spec.Jobs {
		if _, err := app.Tasks().Execute(ctx, t.ID); err != nil {
			return nil, err
		}
	}
	deadline := t0.Add(time.Duration(spec.CapSeconds * float64(time.Second)))
	var done int64
	for time.Now().Before(deadline) {
		if done, err = countTerminal(ctx, app); err != nil {
			return nil, err
		}
		if done >= int64(spec.Jobs) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	el := time.Since(t0)
	var failed int64
	app.DB().WithContext(ctx).Table("jobs").Where("status <> ?", "completed").Count(&failed)
	return map[string]float64{"jobs_per_s": float64(done) / el.Seconds(), "done": float64(done), "not_completed": float64(failed)}, nil
}

type noParams struct{}

// httpSSE is W6: $execute over HTTP at a fixed rate, one SSE subscriber
// per job reading its stream until the terminal event.
func httpSSE(ctx context.Context, spec Spec) (map[string]float64, error) {
	reg := registry.New()
	if err := registry.Register(reg, "noop", func(context.Context, noParams) (int, error) { return 0, nil }); err != nil {
		return nil, err
	}
	app, err := newApp(ctx, spec, reg)
	if err != nil {
		return nil, err
	}
	t, err := app.Tasks().Create(ctx, task.In{Command: "noop", TaskType: task.TypePython, Enabled: true})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	base := "http://" + ln.Addr().String()
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 1024}, Timeout: 30 * time.Second}

	total := int(spec.Rate * spec.Seconds)
	httpLat := make([]time.Duration, total)
	firstLat := make([]time.Duration, total)
	termLat := make([]time.Duration, total)
	var errs atomic.Int64
	var streams sync.WaitGroup
	window := time.Duration(spec.Seconds * float64(time.Second))
	t0 := time.Now()
	submitted := pace(ctx, spec.Rate, window, 32, func(seq int, enq time.Time) {
		id, err := execute(ctx, client, base, t.ID)
		httpLat[seq] = time.Since(enq)
		if err != nil {
			errs.Add(1)
			return
		}
		streams.Go(func() {
			if err := follow(ctx, client, base, id, enq, &firstLat[seq], &termLat[seq]); err != nil {
				errs.Add(1)
			}
		})
	})
	wall := time.Since(t0)
	waited := make(chan struct{})
	go func() { streams.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(time.Duration(spec.CapSeconds * float64(time.Second))):
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutCtx)
	_ = app.Shutdown(shutCtx)

	hl, fl, tl := recorded(httpLat[:total]), recorded(firstLat[:total]), recorded(termLat[:total])
	m := map[string]float64{
		"target_rate":    spec.Rate,
		"submitted_rate": float64(submitted) / wall.Seconds(),
		"errors":         float64(errs.Load()),
		"terminal_seen":  float64(len(tl)),
	}
	hl.into(m, "http")
	fl.into(m, "sse_first")
	tl.into(m, "sse_terminal")
	return m, nil
}

func execute(ctx context.Context, client *http.Client, base, taskID string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v1/tasks/"+taskID+"/$execute", bytes.NewReader(nil))
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	// Read the body to its end, so the connection goes back to the idle
	// pool for the next request instead of being closed.
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("$execute: status %d", resp.StatusCode)
	}
	var body struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return "", err
	}
	return body.JobID, nil
}

// follow reads the job's SSE stream and records the latency, from enq, of
// the first event and of the terminal one.
func follow(ctx context.Context, client *http.Client, base, id string, enq time.Time, first, term *time.Duration) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/jobs/"+id+"/$stream", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("$stream: status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if *first == 0 {
			*first = time.Since(enq)
		}
		var rec struct {
			Status string `json:"status"`
		}
		if json.Unmarshal([]byte(data), &rec) != nil {
			continue
		}
		switch rec.Status {
		case "completed", "failed", "canceled", "deleted":
			*term = time.Since(enq)
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return errors.New("stream ended before a terminal event")
}
