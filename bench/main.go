// Command bench compares chapkit's job scheduler with River and goqite on
// the same SQLite driver, and with River on PostgreSQL, one system at a
// time; and it measures task executions with their artifacts through the
// full service beside the plain-SQL floor of the same lifecycle (W5, on
// both engines).
//
//	cd bench && go run . -quick                   # under two minutes, smoke run
//	cd bench && go run . -md ../BENCHMARKS.md     # the full matrix, both engines
//	cd bench && go run . -engines postgres -reps 3 -out results/pg.jsonl
//	cd bench && go run . -report results/run.jsonl -md ../BENCHMARKS.md   # several files: a,b
//
// The PostgreSQL matrix runs on the server named by -pg, or on a throwaway
// cluster the bench starts from the installed PostgreSQL binaries with
// PostgreSQL's default durability (fsync on); without either it is skipped
// with the reason printed.
//
// Each measurement runs in a fresh child process (this binary re-executed
// in worker mode) on a fresh database file, so CPU time and peak RSS are
// the run's own. Results go to a JSONL file; -md writes the report.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

type options struct {
	quick      bool
	reps       int
	syncs      []string
	workloads  map[string]bool
	jobs       int
	w1Cap      float64
	w2Seconds  float64
	w3Jobs     int
	w4Cap      float64
	w5Seconds  float64
	w5Latency  float64
	w5MemJobs  int
	out        string
	md         string
	dir        string
	profileDir string
	engines    map[string]bool
	pgURL      string
	pgProfile  string
	// failOnCrash makes the exit status 1 when a measurement's child
	// process crashed; slow or missed cells never fail a run.
	failOnCrash bool
}

func main() {
	child := flag.String("child", "", "internal: run one measurement described by this JSON spec")
	crashChild := flag.String("crash-worker", "", "internal: run a W4 worker described by this JSON spec")
	var o options
	var syncs, workloads, reportFrom string
	flag.BoolVar(&o.quick, "quick", false, "smoke run: one repetition, NORMAL only, tuned peers, short windows, on PostgreSQL one W1 cell, W2 and the execution table (under two minutes)")
	flag.IntVar(&o.reps, "reps", 5, "repetitions per cell")
	flag.StringVar(&syncs, "sync", "NORMAL,FULL", "SQLite synchronous modes, each a separate matrix")
	flag.StringVar(&workloads, "workloads", "w1,w2,w3,w4,w5,w6", "workloads to run (w5: the execution table, shell executions, steady-rate latency and memory through the full service)")
	flag.IntVar(&o.jobs, "n", 2000, "W1 jobs per run")
	flag.Float64Var(&o.w1Cap, "w1-cap", 4, "W1 drain cap in seconds (throughput is measured over what drained)")
	flag.Float64Var(&o.w2Seconds, "w2-seconds", 3, "W2 and W6 submission window in seconds")
	flag.IntVar(&o.w3Jobs, "w3-jobs", 200, "W3 jobs per run")
	flag.Float64Var(&o.w4Cap, "w4-cap", 15, "W4 seconds after the restart before unfinished jobs are counted")
	flag.Float64Var(&o.w5Seconds, "w5-seconds", 3, "window in seconds of each W5 closed-loop cell (ours and the plain-SQL floor)")
	flag.Float64Var(&o.w5Latency, "w5-latency-seconds", 5, "W5 steady-rate submission window in seconds")
	flag.IntVar(&o.w5MemJobs, "w5-mem-n", 500, "W5 memory: the heap is read after N and after 10×N finished executions")
	flag.StringVar(&o.out, "out", "", "JSONL results file (default results/<mode>-<time>.jsonl)")
	flag.StringVar(&o.md, "md", "", "write the Markdown report to this file")
	flag.StringVar(&reportFrom, "report", "", "only write the report (-md) and ratio rows from this JSONL file")
	flag.StringVar(&o.dir, "dir", "", "directory for the database files (default: a temporary one)")
	flag.StringVar(&o.profileDir, "profile", "", "write a CPU profile of every run of ours into this directory")
	var engines string
	flag.StringVar(&engines, "engines", "sqlite,postgres", "engines to run: sqlite, postgres or both")
	flag.StringVar(&o.pgURL, "pg", "", "URL of a PostgreSQL server (a role allowed to create databases) instead of a throwaway cluster")
	flag.StringVar(&o.pgProfile, "pg-profile", "", "keep the CPU profile of ours on PostgreSQL, W1 at concurrency 8, in this file (default: a temporary file)")
	flag.BoolVar(&o.failOnCrash, "fail-on-crash", false, "exit with status 1 when a measurement's child process crashed (CI); numbers are never asserted")
	flag.Parse()
	runtime.GOMAXPROCS(2)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch {
	case *child != "":
		os.Exit(childMain(ctx, *child))
	case *crashChild != "":
		var spec Spec
		if err := json.Unmarshal([]byte(*crashChild), &spec); err != nil {
			fatal(err)
		}
		if err := crashWorker(ctx, spec); err != nil {
			fatal(err)
		}
		return
	}
	if reportFrom != "" {
		results, err := readResults(strings.Split(reportFrom, ",")...)
		if err != nil {
			fatal(err)
		}
		printRatios(os.Stdout, results)
		if o.md != "" {
			if err := writeMarkdown(o.md, results, reportFrom); err != nil {
				fatal(err)
			}
		}
		return
	}
	o.syncs = strings.Split(strings.ToUpper(syncs), ",")
	o.engines = map[string]bool{}
	for _, e := range strings.Split(engines, ",") {
		o.engines[strings.ToLower(strings.TrimSpace(e))] = true
	}
	o.workloads = map[string]bool{}
	for _, w := range strings.Split(workloads, ",") {
		o.workloads[strings.TrimSpace(w)] = true
	}
	if o.quick {
		o.reps, o.syncs = 1, []string{"NORMAL"}
		o.jobs, o.w1Cap, o.w2Seconds, o.w3Jobs, o.w4Cap = 500, 2, 1, 100, 8
		o.w5Seconds, o.w5Latency, o.w5MemJobs = 0.5, 2, 100
	}
	if err := run(ctx, o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(1)
}

func encodeSpec(s Spec) (string, error) {
	b, err := json.Marshal(s)
	return string(b), err
}

// childMain runs one measurement and prints its Result as one JSON line.
func childMain(ctx context.Context, raw string) int {
	var spec Spec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if spec.Profile != "" {
		f, err := os.Create(spec.Profile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); _ = f.Close() }()
		}
	}
	res := Result{Spec: spec}
	m, err := runChild(ctx, spec)
	// JSON has no NaN or infinity: a metric without a value is left out.
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			delete(m, k)
		}
	}
	res.Metrics = m
	if err != nil {
		res.Error = err.Error()
	}
	_ = json.NewEncoder(os.Stdout).Encode(res)
	return 0
}

// runner executes specs one after another and records their results.
type runner struct {
	o       options
	self    string
	dir     string
	out     io.Writer
	results []Result
	count   int
	pg      *pgServer
	// crashed counts child processes that exited with an error or printed
	// no result.
	crashed int
}

func (r *runner) run(ctx context.Context, spec Spec) Result {
	r.count++
	t0 := time.Now()
	var res Result
	serverCPU0 := math.NaN()
	pgName := ""
	if spec.Engine == enginePG {
		pgName = fmt.Sprintf("bench_run_%04d", r.count)
		u, err := r.pg.createDB(ctx, pgName)
		if err != nil {
			return r.record(spec, Result{Spec: spec, Error: "create database: " + err.Error()}, t0)
		}
		defer r.pg.dropDB(pgName)
		spec.DB = u
		serverCPU0 = r.pg.serverCPU()
	} else {
		spec.DB = filepath.Join(r.dir, fmt.Sprintf("run-%04d.db", r.count))
	}
	if r.o.profileDir != "" && spec.System == "ours" && spec.Profile == "" {
		spec.Profile = filepath.Join(r.o.profileDir, fmt.Sprintf("%s-%s-c%d-r%.0f-%s-%d.pprof", spec.Workload, spec.matrix(), spec.Concurrency, spec.Rate, spec.Config, spec.Rep))
	}
	if spec.Workload == "w4" {
		m, err := crashRun(ctx, r.self, spec)
		res = Result{Spec: spec, Metrics: m}
		if err != nil {
			res.Error = err.Error()
		}
	} else {
		res = r.runChildProcess(ctx, spec)
	}
	if spec.Engine != enginePG {
		for _, suffix := range []string{"", "-wal", "-shm", ".runlog"} {
			_ = os.Remove(spec.DB + suffix)
		}
	} else if !math.IsNaN(serverCPU0) && res.Metrics != nil {
		// The server's CPU over the whole child run (set-up, insert,
		// drain, stop): a rough cost of the system on the server side.
		r.pg.waitIdle(ctx, pgName)
		if cpu := r.pg.serverCPU() - serverCPU0; cpu >= 0 {
			res.Metrics["server_cpu_s"] = cpu
			if d := res.Metrics["done"]; d > 0 {
				res.Metrics["server_cpu_s_per_1k_jobs"] = cpu / d * 1000
			}
		}
	}
	return r.record(spec, res, t0)
}

// record prints one run's line and appends its result.
func (r *runner) record(spec Spec, res Result, t0 time.Time) Result {
	res.Spec.DB, res.Spec.RunLog = "", ""
	status := "ok"
	if res.Error != "" {
		status = "error: " + res.Error
	}
	fmt.Fprintf(os.Stderr, "%-3s %-6s %-10s %-8s c=%-3d rate=%-6.0f rep=%d %5.1fs %s\n",
		spec.Workload, spec.System, spec.Config, spec.matrix(), spec.Concurrency, spec.Rate, spec.Rep, time.Since(t0).Seconds(), status)
	line, _ := json.Marshal(struct {
		Type string `json:"type"`
		Result
	}{"run", res})
	fmt.Fprintln(r.out, string(line))
	r.results = append(r.results, res)
	return res
}

func (r *runner) runChildProcess(ctx context.Context, spec Spec) Result {
	raw, err := encodeSpec(spec)
	if err != nil {
		return Result{Spec: spec, Error: err.Error()}
	}
	cmd := exec.CommandContext(ctx, r.self, "-child", raw)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		if ctx.Err() == nil {
			r.crashed++
		}
		return Result{Spec: spec, Error: fmt.Sprintf("child: %v", err)}
	}
	var res Result
	if err := json.Unmarshal(out, &res); err != nil {
		r.crashed++
		return Result{Spec: spec, Error: fmt.Sprintf("child output: %v: %q", err, out)}
	}
	return res
}

type sysConf struct{ system, config string }

func run(ctx context.Context, o options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir := o.dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "chapkit-bench-"); err != nil {
			return err
		}
		defer os.RemoveAll(dir)
	}
	if o.profileDir != "" {
		if err := os.MkdirAll(o.profileDir, 0o755); err != nil {
			return err
		}
	}
	mode := "full"
	if o.quick {
		mode = "quick"
	}
	if o.out == "" {
		o.out = filepath.Join("results", fmt.Sprintf("%s-%s.jsonl", mode, time.Now().UTC().Format("20060102T150405Z")))
	}
	if err := os.MkdirAll(filepath.Dir(o.out), 0o755); err != nil {
		return err
	}
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	defer f.Close()
	r := &runner{o: o, self: self, dir: dir, out: f}
	meta, _ := json.Marshal(struct {
		Type    string   `json:"type"`
		Mode    string   `json:"mode"`
		Args    []string `json:"args"`
		Machine machine  `json:"machine"`
		Options struct {
			Reps      int     `json:"reps"`
			Jobs      int     `json:"w1_jobs"`
			W1Cap     float64 `json:"w1_cap_s"`
			W2Seconds float64 `json:"w2_seconds"`
			W3Jobs    int     `json:"w3_jobs"`
			W4Cap     float64 `json:"w4_cap_s"`
			W5Seconds float64 `json:"w5_seconds"`
			W5Latency float64 `json:"w5_latency_s"`
			W5MemJobs int     `json:"w5_mem_n"`
		} `json:"options"`
		Started string `json:"started"`
	}{Type: "meta", Mode: mode, Args: os.Args[1:], Machine: describeMachine(), Started: time.Now().UTC().Format(time.RFC3339),
		Options: struct {
			Reps      int     `json:"reps"`
			Jobs      int     `json:"w1_jobs"`
			W1Cap     float64 `json:"w1_cap_s"`
			W2Seconds float64 `json:"w2_seconds"`
			W3Jobs    int     `json:"w3_jobs"`
			W4Cap     float64 `json:"w4_cap_s"`
			W5Seconds float64 `json:"w5_seconds"`
			W5Latency float64 `json:"w5_latency_s"`
			W5MemJobs int     `json:"w5_mem_n"`
		}{o.reps, o.jobs, o.w1Cap, o.w2Seconds, o.w3Jobs, o.w4Cap, o.w5Seconds, o.w5Latency, o.w5MemJobs}})
	fmt.Fprintln(f, string(meta))

	systems := []sysConf{{"ours", "defaults"}, {"river", "documented"}, {"river", "tuned"}, {"goqite", "documented"}, {"goqite", "tuned"}}
	crashSystems := []sysConf{{"ours", "defaults"}, {"ours", "rescue"}, {"river", "documented"}, {"river", "rescue"}, {"goqite", "documented"}, {"goqite", "rescue"}}
	if o.quick {
		systems = []sysConf{{"ours", "defaults"}, {"river", "tuned"}, {"goqite", "tuned"}}
		// The smoke run's time budget: the crash cell of ours only (each
		// peer's costs about ten seconds), W6 at one rate.
		crashSystems = []sysConf{{"ours", "rescue"}}
	}
	start := time.Now()
	if !o.engines["sqlite"] {
		o.syncs = nil
	}
	for _, sync := range o.syncs {
		if ctx.Err() != nil {
			break
		}
		// Repetitions are the outer loop, so slow drift of the machine
		// spreads over every system instead of biasing one.
		best := map[sysConf]float64{}
		if o.workloads["w1"] || o.workloads["w2"] || o.workloads["w6"] {
			var specs []Spec
			for _, sc := range systems {
				for _, c := range []int{1, 8, 64} {
					specs = append(specs, Spec{Workload: "w1", System: sc.system, Config: sc.config, Synchronous: sync, Concurrency: c, Jobs: o.jobs, CapSeconds: o.w1Cap})
				}
			}
			r.reps(ctx, specs)
			for _, sc := range systems {
				for _, c := range []int{1, 8, 64} {
					s := Spec{Workload: "w1", System: sc.system, Config: sc.config, Synchronous: sync, Concurrency: c, Jobs: o.jobs, CapSeconds: o.w1Cap}
					if v := cellMedian(r.results, s, "jobs_per_s"); v > best[sc] {
						best[sc] = v
					}
				}
			}
		}
		if o.workloads["w2"] {
			var specs []Spec
			for _, sc := range systems {
				for _, rt := range r.rates(best[sc]) {
					specs = append(specs, Spec{Workload: "w2", System: sc.system, Config: sc.config, Synchronous: sync, Concurrency: 8,
						Rate: rt.rate, RateLabel: rt.label, Seconds: o.w2Seconds, CapSeconds: 5})
				}
			}
			r.reps(ctx, specs)
		}
		if o.workloads["w3"] {
			var specs []Spec
			for _, c := range []int{2, 4, 8} {
				specs = append(specs, Spec{Workload: "w3", System: "exec", Config: "raw", Synchronous: sync, Concurrency: c, Jobs: o.w3Jobs, CapSeconds: 60})
				for _, sc := range systems {
					specs = append(specs, Spec{Workload: "w3", System: sc.system, Config: sc.config, Synchronous: sync, Concurrency: c, Jobs: o.w3Jobs, CapSeconds: 60})
				}
			}
			r.reps(ctx, specs)
		}
		if o.workloads["w4"] {
			var specs []Spec
			for _, sc := range crashSystems {
				specs = append(specs, Spec{Workload: "w4", System: sc.system, Config: sc.config, Synchronous: sync, CapSeconds: o.w4Cap})
			}
			r.reps(ctx, specs)
		}
		if o.workloads[wExec] {
			r.reps(ctx, execSpecs(o, sync, true))
		}
		if o.workloads["w6"] {
			var specs []Spec
			w6Rates := r.rates(best[sysConf{"ours", "defaults"}])
			if o.quick {
				w6Rates = w6Rates[1:2] // 500/s
			}
			for _, rt := range w6Rates {
				specs = append(specs, Spec{Workload: "w6", System: "ours", Config: "app", Synchronous: sync,
					Rate: rt.rate, RateLabel: rt.label, Seconds: o.w2Seconds, CapSeconds: 10})
			}
			r.reps(ctx, specs)
		}
	}
	if o.engines[enginePG] && ctx.Err() == nil {
		r.runPG(ctx, f)
	}
	if ctx.Err() == nil {
		fmt.Fprintf(f, "{\"type\":\"end\",\"seconds\":%.0f}\n", time.Since(start).Seconds())
	}
	fmt.Fprintf(os.Stderr, "total %.0fs, results in %s\n", time.Since(start).Seconds(), o.out)
	results, err := readResults(o.out)
	if err != nil {
		return err
	}
	printRatios(os.Stdout, results)
	if o.md != "" {
		if err := writeMarkdown(o.md, results, o.out); err != nil {
			return err
		}
	}
	if o.failOnCrash && r.crashed > 0 {
		return fmt.Errorf("%d measurement child processes crashed (see the errors above and in %s)", r.crashed, o.out)
	}
	return nil
}

func (r *runner) reps(ctx context.Context, specs []Spec) {
	for rep := 1; rep <= r.o.reps; rep++ {
		for _, s := range specs {
			if ctx.Err() != nil {
				return
			}
			s.Rep = rep
			r.run(ctx, s)
		}
	}
}

type rate struct {
	rate  float64
	label string
}

// rates are W2's submission rates: 100, 500 and 1,000 jobs/s and 80 % of
// the system's best W1 median (left out of a quick run: a backlog at that
// rate takes most of the smoke run's time budget to drain).
func (r *runner) rates(best float64) []rate {
	rs := []rate{{100, "100/s"}, {500, "500/s"}, {1000, "1000/s"}}
	if best > 0 && !r.o.quick {
		rs = append(rs, rate{float64(int(best * 0.8)), "80% of W1 best"})
	}
	return rs
}
