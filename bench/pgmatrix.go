package main

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// PostgreSQL matrix sizes: W2 runs at one rate (the scale-out target's),
// W4 with three nodes of this many workers each.
const (
	pgW2Rate     = 200
	pgW4NodeConc = 8
)

// pgLine is the JSONL record of the server the PostgreSQL matrix ran on.
type pgLine struct {
	Type     string            `json:"type"` // "postgres"
	Source   string            `json:"source"`
	Settings map[string]string `json:"settings"`
	Skipped  string            `json:"skipped,omitempty"`
}

// profileLine is the JSONL record of the profiled run of ours.
type profileLine struct {
	Type   string   `json:"type"` // "profile"
	Spec   Spec     `json:"spec"`
	Jobs   float64  `json:"jobs_per_s"`
	Cum    []string `json:"cum"`  // go tool pprof -top -cum, the table rows
	Flat   []string `json:"flat"` // go tool pprof -top, the table rows
	Header []string `json:"header"`
	// Waits are the server sessions of the run sampled every 10 ms:
	// count, wait event (CPU when none) and the statement's start.
	Waits   []string `json:"waits,omitempty"`
	Samples int      `json:"samples,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// runPG runs the PostgreSQL matrix: every system one after another on
// the same server, a fresh database per run.
func (r *runner) runPG(ctx context.Context, f io.Writer) {
	var (
		srv    *pgServer
		err    error
		source string
	)
	if r.o.pgURL != "" {
		srv, err = usePG(r.o.pgURL)
		source = "-pg URL"
	} else {
		srv, err = startPG()
		source = "throwaway cluster started by the bench"
	}
	if err != nil {
		reason := strings.SplitN(err.Error(), "\n", 2)[0]
		fmt.Fprintf(os.Stderr, "PostgreSQL matrix skipped: %s\n", reason)
		line, _ := json.Marshal(pgLine{Type: "postgres", Source: source, Skipped: reason})
		fmt.Fprintln(f, string(line))
		return
	}
	defer srv.stop()
	r.pg = srv
	line, _ := json.Marshal(pgLine{Type: "postgres", Source: source, Settings: srv.settings(ctx)})
	fmt.Fprintln(f, string(line))
	fmt.Fprintf(os.Stderr, "PostgreSQL %s (%s)\n", srv.version, source)

	systems := []sysConf{{"ours", "defaults"}, {"river", "documented"}, {"river", "tuned"}}
	concs := []int{1, 8, 64}
	w2Seconds := max(r.o.w2Seconds, 5)
	if r.o.quick {
		systems = []sysConf{{"ours", "defaults"}, {"river", "tuned"}}
		concs = []int{8}
		w2Seconds = 1
	}
	var specs []Spec
	for _, sc := range systems {
		for _, c := range concs {
			specs = append(specs, Spec{Workload: "w1", Engine: enginePG, System: sc.system, Config: sc.config, Concurrency: c, Jobs: r.o.jobs, CapSeconds: r.o.w1Cap})
		}
	}
	for _, sc := range systems {
		if !r.o.workloads["w2"] {
			break
		}
		specs = append(specs, Spec{Workload: "w2", Engine: enginePG, System: sc.system, Config: sc.config, Concurrency: 8,
			Rate: pgW2Rate, RateLabel: fmt.Sprintf("%d/s", pgW2Rate), Seconds: w2Seconds, CapSeconds: 5})
	}
	if !r.o.quick && r.o.workloads["w4"] {
		for _, sc := range systems {
			specs = append(specs, Spec{Workload: "w4n", Engine: enginePG, System: sc.system, Config: sc.config, Concurrency: pgW4NodeConc, Jobs: r.o.jobs, CapSeconds: 2 * r.o.w1Cap})
		}
	}
	if r.o.workloads[wExec] {
		// A quick run keeps the execution table on PostgreSQL (the
		// server's commits are slow enough to dominate its time budget).
		specs = append(specs, execSpecs(r.o, enginePG, !r.o.quick)...)
	}
	if !r.o.quick {
		// What the artifact costs ours: the same W1 cells without it.
		for _, c := range concs {
			specs = append(specs, Spec{Workload: "w1", Engine: enginePG, System: "ours", Config: "no-artifact", Concurrency: c, Jobs: r.o.jobs, CapSeconds: r.o.w1Cap})
		}
	}
	r.reps(ctx, specs)
	if ctx.Err() == nil && !r.o.quick {
		r.profileRun(ctx, f)
	}
}

// profileRun is one extra run of ours, W1 at concurrency 8, under the CPU
// profiler; its throughput is recorded with the profile, not in the cell.
func (r *runner) profileRun(ctx context.Context, f io.Writer) {
	path := r.o.pgProfile
	if path == "" {
		path = filepath.Join(r.dir, "ours-postgres-w1-c8.pprof")
	}
	spec := Spec{Workload: "w1", Engine: enginePG, System: "ours", Config: "defaults", Concurrency: 8, Jobs: r.o.jobs, CapSeconds: r.o.w1Cap,
		Profile: path}
	name := "bench_profile"
	pl := profileLine{Type: "profile", Spec: spec}
	u, err := r.pg.createDB(ctx, name)
	if err != nil {
		pl.Error = err.Error()
	} else {
		spec.DB = u
		sctx, stop := context.WithCancel(ctx)
		waits := make(chan waitSample, 1)
		go func() { waits <- sampleWaits(sctx, r.pg.admin, name) }()
		res := r.runChildProcess(ctx, spec)
		stop()
		ws := <-waits
		pl.Waits, pl.Samples = ws.rows, ws.samples
		r.pg.dropDB(name)
		pl.Jobs = res.Metrics["jobs_per_s"]
		pl.Error = res.Error
		if pl.Error == "" {
			pl.Header, pl.Cum, err = pprofTop(ctx, spec.Profile, true)
			if err == nil {
				_, pl.Flat, err = pprofTop(ctx, spec.Profile, false)
			}
			if err != nil {
				pl.Error = err.Error()
			}
		}
	}
	pl.Spec.DB = ""
	fmt.Fprintf(os.Stderr, "profile: ours postgres W1 c=8 %.0f jobs/s, %s %s\n", pl.Jobs, spec.Profile, pl.Error)
	line, _ := json.Marshal(pl)
	fmt.Fprintln(f, string(line))
}

// pprofTop summarises a CPU profile with go tool pprof: the header lines
// (duration, samples) and the first 25 rows, by cumulative or flat time.
func pprofTop(ctx context.Context, path string, cum bool) (header, rows []string, err error) {
	args := []string{"tool", "pprof", "-top", "-nodecount=25"}
	if cum {
		args = append(args, "-cum")
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", append(args, path)...).Output()
	if err != nil {
		return nil, nil, fmt.Errorf("go tool pprof: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	inTable := false
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), " ")
		switch {
		case strings.HasPrefix(strings.TrimSpace(l), "flat "):
			inTable = true
		case inTable:
			rows = append(rows, l)
		case strings.HasPrefix(l, "Duration") || strings.HasPrefix(l, "Showing") || strings.HasPrefix(l, "Type"):
			header = append(header, l)
		}
	}
	return header, rows, sc.Err()
}

type waitSample struct {
	rows    []string
	samples int
}

// sampleWaits polls pg_stat_activity every 10 ms until ctx ends and tallies
// what the active sessions of database name were doing: the wait event
// (CPU when none) and the first 40 characters of the statement.
func sampleWaits(ctx context.Context, admin, name string) waitSample {
	db, err := sql.Open("pgx", admin)
	if err != nil {
		return waitSample{}
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	counts := map[string]int{}
	samples := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			type kv struct {
				k string
				n int
			}
			var all []kv
			for k, n := range counts {
				all = append(all, kv{k, n})
			}
			slices.SortFunc(all, func(a, b kv) int { return b.n - a.n })
			var rows []string
			for i, e := range all {
				if i == 20 {
					break
				}
				rows = append(rows, fmt.Sprintf("%6d  %s", e.n, e.k))
			}
			return waitSample{rows: rows, samples: samples}
		case <-tick.C:
		}
		rs, err := db.QueryContext(ctx, `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query, '\s+', ' ', 'g'), 40)
			FROM pg_stat_activity WHERE state = 'active' AND backend_type = 'client backend' AND datname = $1 AND pid <> pg_backend_pid()`, name)
		if err != nil {
			continue
		}
		samples++
		for rs.Next() {
			var w, q string
			if rs.Scan(&w, &q) == nil {
				counts[fmt.Sprintf("%-26s %s", w, q)]++
			}
		}
		_ = rs.Close()
	}
}
