package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
)

// execSpecs are the cells of the execution workloads in one matrix (a
// SQLite synchronous mode or "postgres"): the execution table beside its
// floor, and with extras the shell, latency and memory cells too. Ours and
// its baseline alternate at each concurrency, so drift of the machine hits
// both alike.
func execSpecs(o options, matrix string, extras bool) []Spec {
	var specs []Spec
	add := func(s Spec) { specs = append(specs, inMatrix(s, matrix)) }
	for _, c := range []int{1, 8, 64} {
		add(Spec{Workload: wExec, System: "ours", Config: cfgGo, Concurrency: c, Seconds: o.w5Seconds})
		add(Spec{Workload: wExec, System: sysFloor, Config: floorThree, Concurrency: c, Seconds: o.w5Seconds})
		if c == 1 {
			add(Spec{Workload: wExec, System: sysFloor, Config: floorTwo, Concurrency: 1, Seconds: o.w5Seconds})
		}
		if c == 8 {
			add(Spec{Workload: wExec, System: "ours", Config: cfgHTTP, Concurrency: 8, Seconds: o.w5Seconds})
		}
	}
	if !extras {
		return specs
	}
	for _, c := range []int{2, 4, 8} {
		add(Spec{Workload: wShell, System: "exec", Config: "raw", Concurrency: c, Seconds: o.w5Seconds})
		add(Spec{Workload: wShell, System: "ours", Config: cfgGo, Concurrency: c, Seconds: o.w5Seconds})
	}
	for _, rt := range execRates {
		add(Spec{Workload: wLatency, System: "ours", Config: cfgGo, Concurrency: 8, Rate: rt.rate, RateLabel: rt.label,
			Seconds: o.w5Latency, CapSeconds: 10})
	}
	memN := o.w5MemJobs
	if matrix == enginePG {
		// Commits on PostgreSQL with fsync on are several times slower
		// than on a SQLite file here: a fifth of N keeps the cell's time
		// near SQLite's.
		memN = max(memN/5, 50)
	}
	add(Spec{Workload: wMemory, System: "ours", Config: cfgGo, Concurrency: 8, Jobs: memN})
	return specs
}

// execRates are the steady rates of w5l with their p99 targets in ms.
var execRates = []struct {
	rate  float64
	label string
	p99   float64
}{{200, "200/s", 2}, {500, "500/s", 5}}

// The targets of the execution table.
const (
	goalFloorC1    = 1.3 // × the three-commit floor at concurrency 1
	goalFloor      = 0.5 // × the batched floor at concurrency 8 and 64
	goalShell      = 0.9 // × the plain exec loop
	goalHTTP       = 0.8 // × the Go API rate at concurrency 8
	goalP50        = 1.0 // ms, enqueue→done at every steady rate
	goalHeapGrowth = 1.1 // heap after 10×N over after N: flat
)

// goal is one target and what was measured against it.
type goal struct {
	value, want float64
	atLeast     bool   // met when value ≥ want; otherwise when value < want
	unit        string // "×" for ratios, " ms" for latencies
}

// String is the target, and whether it was met and by how much: a ratio
// names the factor still needed, a latency the milliseconds over.
func (g goal) String() string {
	op := "<"
	if g.atLeast {
		op = "≥"
	}
	t := fmt.Sprintf("target %s %s%s", op, fmtNum(g.want), g.unit)
	switch {
	case math.IsNaN(g.value):
		return t + ": n/a"
	case g.atLeast && g.value >= g.want:
		return fmt.Sprintf("%s: met (%s× the target)", t, fmtNum(g.value/g.want))
	case g.atLeast:
		return fmt.Sprintf("%s: missed by %s%% (needs %s× more)", t, fmtNum((1-g.value/g.want)*100), fmtNum(g.want/g.value))
	case g.value < g.want:
		return fmt.Sprintf("%s: met (%s%s under)", t, fmtNum(g.want-g.value), g.unit)
	default:
		return fmt.Sprintf("%s: missed by %s%s (%s× the target)", t, fmtNum(g.value-g.want), g.unit, fmtNum(g.value/g.want))
	}
}

// floorGoal is the target of ours against the floor at concurrency c.
func floorGoal(ratio float64, c int) goal {
	if c == 1 {
		return goal{value: ratio, want: goalFloorC1, atLeast: true, unit: "×"}
	}
	return goal{value: ratio, want: goalFloor, atLeast: true, unit: "×"}
}

// execMedian is the median of metric over the cell of the execution
// workloads named by its fields, in matrix.
func execMedian(runs []Result, matrix, workload, system, config string, c int, rateLabel, metric string) float64 {
	return findMedian(runs, inMatrix(Spec{Workload: workload, System: system, Config: config, Concurrency: c, RateLabel: rateLabel}, matrix), metric)
}

// execRow is one line of the execution table: ours and the floor at one
// concurrency, their ratio and its target.
type execRow struct {
	c                  int
	ours, floor, ratio float64
	goal               goal
}

func execRows(runs []Result, matrix string) []execRow {
	var rows []execRow
	for _, c := range []int{1, 8, 64} {
		o := execMedian(runs, matrix, wExec, "ours", cfgGo, c, "", "jobs_per_s")
		f := execMedian(runs, matrix, wExec, sysFloor, floorThree, c, "", "jobs_per_s")
		if math.IsNaN(o) && math.IsNaN(f) {
			continue
		}
		rows = append(rows, execRow{c: c, ours: o, floor: f, ratio: o / f, goal: floorGoal(o/f, c)})
	}
	return rows
}

// printExecRatios prints the ratio rows of the execution workloads of one
// matrix, each with its target. Nothing is asserted: a slow machine only
// shows lower ratios.
func printExecRatios(w io.Writer, runs []Result, matrix string) {
	for _, r := range execRows(runs, matrix) {
		fmt.Fprintf(w, "  W5 exec    ours/floor c%-2d %s/%s=%s  %s\n", r.c, fmtNum(r.ours), fmtNum(r.floor), fmtNum(r.ratio), r.goal)
	}
	if two, three := execMedian(runs, matrix, wExec, sysFloor, floorTwo, 1, "", "jobs_per_s"),
		execMedian(runs, matrix, wExec, sysFloor, floorThree, 1, "", "jobs_per_s"); !math.IsNaN(two) && !math.IsNaN(three) {
		fmt.Fprintf(w, "  W5 exec    floor two commits/three commits c1 %s/%s=%s\n", fmtNum(two), fmtNum(three), fmtNum(two/three))
	}
	if h, g, r, same := httpRatio(runs, matrix); !math.IsNaN(r) {
		where := ""
		if same {
			where = " (same run)"
		}
		fmt.Fprintf(w, "  W5 http    $execute over HTTP/Go API c8 %s/%s=%s%s  %s\n", fmtNum(h), fmtNum(g), fmtNum(r), where,
			goal{value: r, want: goalHTTP, atLeast: true, unit: "×"})
	}
	for _, c := range []int{2, 4, 8} {
		o := execMedian(runs, matrix, wShell, "ours", cfgGo, c, "", "jobs_per_s")
		x := execMedian(runs, matrix, wShell, "exec", "raw", c, "", "jobs_per_s")
		if !math.IsNaN(o) && !math.IsNaN(x) {
			fmt.Fprintf(w, "  W5 shell   ours/exec c%d %s/%s=%s  %s\n", c, fmtNum(o), fmtNum(x), fmtNum(o/x),
				goal{value: o / x, want: goalShell, atLeast: true, unit: "×"})
		}
	}
	for _, rt := range execRates {
		p50 := execMedian(runs, matrix, wLatency, "ours", cfgGo, 8, rt.label, "done_p50_ms")
		p99 := execMedian(runs, matrix, wLatency, "ours", cfgGo, 8, rt.label, "done_p99_ms")
		if !math.IsNaN(p50) || !math.IsNaN(p99) {
			fmt.Fprintf(w, "  W5 latency %s enqueue→done p50 %sms (%s)  p99 %sms (%s)\n", rt.label, fmtNum(p50),
				goal{value: p50, want: goalP50, unit: " ms"}, fmtNum(p99), goal{value: p99, want: rt.p99, unit: " ms"})
		}
	}
	if r := execMedian(runs, matrix, wMemory, "ours", cfgGo, 8, "", "heap_ratio"); !math.IsNaN(r) {
		fmt.Fprintf(w, "  W5 memory  heap in use after 10×N/after N finished=%s (%s/%s MiB)  %s\n", fmtNum(r),
			fmtNum(execMedian(runs, matrix, wMemory, "ours", cfgGo, 8, "", "heap_10n_mb")),
			fmtNum(execMedian(runs, matrix, wMemory, "ours", cfgGo, 8, "", "heap_n_mb")),
			goal{value: r, want: goalHeapGrowth, unit: "×"})
	}
}

// httpRatio is $execute over HTTP against the Go API at concurrency 8:
// the two rates and their ratio. same reports that the HTTP cell measured
// its Go API reference itself, in the same run (the median of its
// per-run ratios is used then); results without it fall back to the
// separate Go API cell, run at another time.
func httpRatio(runs []Result, matrix string) (h, g, ratio float64, same bool) {
	h = execMedian(runs, matrix, wExec, "ours", cfgHTTP, 8, "", "jobs_per_s")
	if r := execMedian(runs, matrix, wExec, "ours", cfgHTTP, 8, "", "http_go_ratio"); !math.IsNaN(r) {
		return h, execMedian(runs, matrix, wExec, "ours", cfgHTTP, 8, "", "go_jobs_per_s"), r, true
	}
	g = execMedian(runs, matrix, wExec, "ours", cfgGo, 8, "", "jobs_per_s")
	return h, g, h / g, false
}

// writeExecSection renders the execution workloads of one matrix.
func writeExecSection(b *bytes.Buffer, runs []Result, matrix string) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if len(cells(runs, wExec, matrix))+len(cells(runs, wShell, matrix))+len(cells(runs, wLatency, matrix))+len(cells(runs, wMemory, matrix)) == 0 {
		return
	}
	p("### W5 task executions with their artifacts, beside the plain-SQL floor\n\n")
	if rows := execRows(runs, matrix); len(rows) > 0 {
		p("| concurrency | no-op function task through the library, executions/s | floor: the same lifecycle in plain SQL on one connection, each transaction carrying c jobs, executions/s | ratio | target |\n| ---: | ---: | ---: | ---: | --- |\n")
		for _, r := range rows {
			p("| %d | %s | %s | %s | %s |\n", r.c,
				fmtSummary(cellSummaryOf(runs, matrix, wExec, "ours", cfgGo, r.c, "", "jobs_per_s")),
				fmtSummary(cellSummaryOf(runs, matrix, wExec, sysFloor, floorThree, r.c, "", "jobs_per_s")),
				fmtNum(r.ratio), r.goal)
		}
		two := execMedian(runs, matrix, wExec, sysFloor, floorTwo, 1, "", "jobs_per_s")
		if !math.IsNaN(two) && len(rows) > 0 && rows[0].c == 1 {
			p("\nAt concurrency 1 the floor is the three-commit floor (insert; claim; artifact and completion, one transaction each). ")
			p("The two-commit floor (the job stored already running; artifact and completion together) ran at %s executions/s, %s× the three-commit one.\n",
				fmtSummary(cellSummaryOf(runs, matrix, wExec, sysFloor, floorTwo, 1, "", "jobs_per_s")), fmtNum(two/rows[0].floor))
		}
		p("\n| cell | CPU s per 1,000 executions (this process) | peak RSS MB | completed jobs without an artifact |\n| --- | ---: | ---: | ---: |\n")
		for _, s := range cells(runs, wExec, matrix) {
			p("| %s c=%d | %s | %s | %s |\n", label(s), s.Concurrency, fmtSummary(cellSummary(runs, s, "cpu_s_per_1k_jobs")),
				fmtSummary(cellSummary(runs, s, "peak_rss_mb")), fmtSummary(cellSummary(runs, s, "without_artifact")))
		}
		p("\n")
	}
	if h, g, r, same := httpRatio(runs, matrix); !math.IsNaN(h) {
		get := func(m string) summary { return cellSummaryOf(runs, matrix, wExec, "ours", cfgHTTP, 8, "", m) }
		if same {
			p("**$execute over HTTP** at concurrency 8: %s executions/s against %s through the Go API in the same run "+
				"(alternating slices on one service), ratio %s; %s. CPU s per 1,000 executions: %s over HTTP, %s through the Go API; "+
				"connections opened while measuring: %s.\n\n",
				fmtSummary(get("jobs_per_s")), fmtSummary(get("go_jobs_per_s")), fmtSummary(get("http_go_ratio")),
				goal{value: r, want: goalHTTP, atLeast: true, unit: "×"},
				fmtSummary(get("cpu_s_per_1k_jobs")), fmtSummary(get("go_cpu_s_per_1k_jobs")), fmtSummary(get("conns_dialed")))
		} else {
			p("**$execute over HTTP** at concurrency 8: %s executions/s against %s through the Go API, ratio %s; %s.\n\n",
				fmtSummary(get("jobs_per_s")), fmtNum(g), fmtNum(r), goal{value: r, want: goalHTTP, atLeast: true, unit: "×"})
		}
	}
	if cs := cells(runs, wShell, matrix); len(cs) > 0 {
		p("**Shell executions** (`true`) through the library against `exec.Command(\"sh\", \"-c\", \"true\")` from as many goroutines:\n\n| concurrency | ours executions/s | exec loop runs/s | ratio | target |\n| ---: | ---: | ---: | ---: | --- |\n")
		for _, c := range []int{2, 4, 8} {
			o := execMedian(runs, matrix, wShell, "ours", cfgGo, c, "", "jobs_per_s")
			x := execMedian(runs, matrix, wShell, "exec", "raw", c, "", "jobs_per_s")
			if math.IsNaN(o) && math.IsNaN(x) {
				continue
			}
			p("| %d | %s | %s | %s | %s |\n", c, fmtSummary(cellSummaryOf(runs, matrix, wShell, "ours", cfgGo, c, "", "jobs_per_s")),
				fmtSummary(cellSummaryOf(runs, matrix, wShell, "exec", "raw", c, "", "jobs_per_s")), fmtNum(o/x),
				goal{value: o / x, want: goalShell, atLeast: true, unit: "×"})
		}
		p("\n")
	}
	if cs := cells(runs, wLatency, matrix); len(cs) > 0 {
		p("**Enqueue→done latency** at a steady rate (concurrency 8):\n\n| rate | submitted/s | Execute returned p50 / p99 ms | done p50 / p95 / p99 ms | p50 target | p99 target | not done |\n| --- | ---: | ---: | ---: | --- | --- | ---: |\n")
		for _, rt := range execRates {
			get := func(m string) summary { return cellSummaryOf(runs, matrix, wLatency, "ours", cfgGo, 8, rt.label, m) }
			if get("done_p99_ms").N == 0 {
				continue
			}
			p("| %s | %s | %s / %s | %s / %s / %s | %s | %s | %s |\n", rt.label, fmtSummary(get("submitted_rate")),
				fmtSummary(get("submit_p50_ms")), fmtSummary(get("submit_p99_ms")),
				fmtSummary(get("done_p50_ms")), fmtSummary(get("done_p95_ms")), fmtSummary(get("done_p99_ms")),
				goal{value: get("done_p50_ms").Median, want: goalP50, unit: " ms"},
				goal{value: get("done_p99_ms").Median, want: rt.p99, unit: " ms"}, fmtSummary(get("not_done")))
		}
		p("\n")
	}
	for _, s := range cells(runs, wMemory, matrix) {
		n := s.Jobs
		p("**Memory**: heap in use (after two collections) %s MiB after %d finished executions and %s MiB after %d; ratio %s; %s.\n\n",
			fmtSummary(cellSummary(runs, s, "heap_n_mb")), n, fmtSummary(cellSummary(runs, s, "heap_10n_mb")), 10*n,
			fmtSummary(cellSummary(runs, s, "heap_ratio")), goal{value: cellMedian(runs, s, "heap_ratio"), want: goalHeapGrowth, unit: "×"})
	}
}

// cellSummaryOf is cellSummary of the cell named by its fields.
func cellSummaryOf(runs []Result, matrix, workload, system, config string, c int, rateLabel, metric string) summary {
	if s, ok := findCell(runs, inMatrix(Spec{Workload: workload, System: system, Config: config, Concurrency: c, RateLabel: rateLabel}, matrix)); ok {
		return cellSummary(runs, s, metric)
	}
	return summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
}

const execSetupText = `- **W5 task executions** (the execution table, on every engine): the full service (` + "`chapkit.NewServiceBuilder`" + ` with artifacts, jobs and tasks, its defaults but MaxConcurrency) with one registered no-op function task. *ours go*: a closed loop of c callers, each running ` + "`Tasks().Execute`" + ` then ` + "`Scheduler().Wait`" + ` as a user does, at MaxConcurrency c; every execution stores its artifact. *ours http*: the same at c=8 with ` + "`POST /api/v1/tasks/{id}/$execute`" + ` over loopback HTTP (a keep-alive client with an idle connection per caller) instead of ` + "`Execute`" + `, still waited for with ` + "`Scheduler().Wait`" + `; the cell runs the Go API loop beside it on the same service, in alternating slices (HTTP, Go, Go, HTTP, …) of about 125 ms, the window for each, and the ratio is taken within the run. *floor 3tx*: the same lifecycle in hand-written SQL on the library's own tables (migrated by the library), on one connection with prepared statements (SQLite: WAL, a busy timeout and the matrix's synchronous mode, as the peers get; PostgreSQL: pgx), in rounds of c jobs: one transaction inserts c pending jobs, one claims them (oldest first), one inserts their c artifacts and completes them; at c=1 this is the three-commit floor. *floor 2tx* (c=1): the job stored already running, then artifact and completion in one transaction. Each cell runs for the W5 window in the options after one uncounted round. **Shell**: the loop with a shell task running ` + "`true`" + ` against ` + "`exec.Command(\"sh\", \"-c\", \"true\")`" + ` from as many goroutines. **Latency**: ` + "`Execute`" + ` at 200 and 500 per second from a paced submitter (the enqueue time is the scheduled slot), one waiter per job; done is when ` + "`Scheduler().Wait`" + ` returned. **Memory**: the heap in use after N and after 10×N finished executions in one process.
`
