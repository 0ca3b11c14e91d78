package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestGoalText checks the verdict beside each target: met or missed, and
// by how much.
func TestGoalText(t *testing.T) {
	got := []string{
		goal{value: 0.65, want: 1.3, atLeast: true, unit: "×"}.String(),
		goal{value: 0.75, want: 0.5, atLeast: true, unit: "×"}.String(),
		goal{value: 13, want: 5, unit: " ms"}.String(),
		goal{value: 1.5, want: 2, unit: " ms"}.String(),
	}
	want := []string{
		"target ≥ 1.30×: missed by 50.0% (needs 2.00× more)",
		"target ≥ 0.50×: met (1.50× the target)",
		"target < 5.00 ms: missed by 8.00 ms (2.60× the target)",
		"target < 2.00 ms: met (0.50 ms under)",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("verdicts (-want +got):\n%s", diff)
	}
}

// TestExecReport writes a result file with the execution cells of one
// SQLite matrix and of PostgreSQL, and checks the ratio rows (ours over the
// floor in the same matrix, with its target) and that the Markdown report
// renders the execution table in both matrices.
func TestExecReport(t *testing.T) {
	dir := t.TempDir()
	type run struct {
		Type string `json:"type"`
		Result
	}
	var lines []any
	lines = append(lines, map[string]any{"type": "meta", "mode": "quick", "args": []string{"-quick"}, "started": "2026-01-01T00:00:00Z"})
	add := func(matrix string, s Spec, m map[string]float64) {
		s.Rep = 1
		lines = append(lines, run{"run", Result{Spec: inMatrix(s, matrix), Metrics: m}})
	}
	for _, mx := range []string{"NORMAL", enginePG} {
		k := 1.0
		if mx == enginePG {
			k = 0.1
		}
		for _, c := range []int{1, 8, 64} {
			add(mx, Spec{Workload: wExec, System: "ours", Config: cfgGo, Concurrency: c}, map[string]float64{"jobs_per_s": k * 1000 * float64(c)})
			add(mx, Spec{Workload: wExec, System: sysFloor, Config: floorThree, Concurrency: c}, map[string]float64{"jobs_per_s": k * 4000 * float64(c)})
		}
		add(mx, Spec{Workload: wExec, System: sysFloor, Config: floorTwo, Concurrency: 1}, map[string]float64{"jobs_per_s": k * 6000})
		httpCell := map[string]float64{"jobs_per_s": k * 7200}
		if mx != enginePG {
			// SQLite's HTTP cell measured its Go API reference itself; the
			// PostgreSQL one, as older result files, did not.
			httpCell["go_jobs_per_s"], httpCell["http_go_ratio"] = 7500, 0.96
			httpCell["cpu_s_per_1k_jobs"], httpCell["go_cpu_s_per_1k_jobs"], httpCell["conns_dialed"] = 0.5, 0.4, 0
		}
		add(mx, Spec{Workload: wExec, System: "ours", Config: cfgHTTP, Concurrency: 8}, httpCell)
		for _, c := range []int{2, 4, 8} {
			add(mx, Spec{Workload: wShell, System: "exec", Config: "raw", Concurrency: c}, map[string]float64{"jobs_per_s": 1000})
			add(mx, Spec{Workload: wShell, System: "ours", Config: cfgGo, Concurrency: c}, map[string]float64{"jobs_per_s": 950})
		}
		add(mx, Spec{Workload: wLatency, System: "ours", Config: cfgGo, Concurrency: 8, Rate: 200, RateLabel: "200/s"},
			map[string]float64{"done_p50_ms": 0.5, "done_p95_ms": 1, "done_p99_ms": 1.5, "submitted_rate": 200})
		add(mx, Spec{Workload: wLatency, System: "ours", Config: cfgGo, Concurrency: 8, Rate: 500, RateLabel: "500/s"},
			map[string]float64{"done_p50_ms": 2, "done_p95_ms": 9, "done_p99_ms": 10, "submitted_rate": 500})
		add(mx, Spec{Workload: wMemory, System: "ours", Config: cfgGo, Concurrency: 8, Jobs: 100},
			map[string]float64{"heap_n_mb": 4, "heap_10n_mb": 4.2, "heap_ratio": 1.05})
	}
	lines = append(lines, map[string]any{"type": "end", "seconds": 1})
	var b strings.Builder
	for _, l := range lines {
		raw, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(raw)
		b.WriteByte('\n')
	}
	path := filepath.Join(dir, "quick.jsonl")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	rf, err := readResults(path)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	printRatios(&out, rf)
	var got []string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "W5 ") {
			got = append(got, strings.Join(strings.Fields(l), " "))
		}
	}
	sqlite := []string{
		"W5 exec ours/floor c1 1000/4000=0.25 target ≥ 1.30×: missed by 80.8% (needs 5.20× more)",
		"W5 exec ours/floor c8 8000/32000=0.25 target ≥ 0.50×: missed by 50.0% (needs 2.00× more)",
		"W5 exec ours/floor c64 64000/256000=0.25 target ≥ 0.50×: missed by 50.0% (needs 2.00× more)",
		"W5 exec floor two commits/three commits c1 6000/4000=1.50",
		"W5 http $execute over HTTP/Go API c8 7200/7500=0.96 (same run) target ≥ 0.80×: met (1.20× the target)",
		"W5 shell ours/exec c2 950/1000=0.95 target ≥ 0.90×: met (1.06× the target)",
		"W5 shell ours/exec c4 950/1000=0.95 target ≥ 0.90×: met (1.06× the target)",
		"W5 shell ours/exec c8 950/1000=0.95 target ≥ 0.90×: met (1.06× the target)",
		"W5 latency 200/s enqueue→done p50 0.50ms (target < 1.00 ms: met (0.50 ms under)) p99 1.50ms (target < 2.00 ms: met (0.50 ms under))",
		"W5 latency 500/s enqueue→done p50 2.00ms (target < 1.00 ms: missed by 1.00 ms (2.00× the target)) p99 10.0ms (target < 5.00 ms: missed by 5.00 ms (2.00× the target))",
		"W5 memory heap in use after 10×N/after N finished=1.05 (4.20/4.00 MiB) target < 1.10×: met (0.05× under)",
	}
	pg := []string{
		"W5 exec ours/floor c1 100/400=0.25 target ≥ 1.30×: missed by 80.8% (needs 5.20× more)",
		"W5 exec ours/floor c8 800/3200=0.25 target ≥ 0.50×: missed by 50.0% (needs 2.00× more)",
		"W5 exec ours/floor c64 6400/25600=0.25 target ≥ 0.50×: missed by 50.0% (needs 2.00× more)",
		"W5 exec floor two commits/three commits c1 600/400=1.50",
		"W5 http $execute over HTTP/Go API c8 720/800=0.90 target ≥ 0.80×: met (1.12× the target)",
	}
	pg = append(pg, sqlite[5:]...)
	if diff := cmp.Diff(append(sqlite, pg...), got); diff != "" {
		t.Fatalf("W5 ratio rows (-want +got):\n%s", diff)
	}

	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeMarkdown(md, rf, path); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	for _, want := range []string{
		"| 8 | 8000 | 32000 | 0.25 | target ≥ 0.50×: missed by 50.0% (needs 2.00× more) |",
		"| 8 | 800 | 3200 | 0.25 | target ≥ 0.50×: missed by 50.0% (needs 2.00× more) |",
		"The two-commit floor (the job stored already running; artifact and completion together) ran at 6000 executions/s, 1.50× the three-commit one.",
		"| 500/s | 500 | n/a / n/a | 2.00 / 9.00 / 10.0 | target < 1.00 ms: missed by 1.00 ms (2.00× the target) | target < 5.00 ms: missed by 5.00 ms (2.00× the target) | n/a |",
		"**$execute over HTTP** at concurrency 8: 7200 executions/s against 7500 through the Go API in the same run (alternating slices on one service), ratio 0.96; " +
			"target ≥ 0.80×: met (1.20× the target). CPU s per 1,000 executions: 0.50 over HTTP, 0.40 through the Go API; connections opened while measuring: 0.00.",
		"**$execute over HTTP** at concurrency 8: 720 executions/s against 800 through the Go API, ratio 0.90; target ≥ 0.80×: met (1.12× the target).",
		"**Memory**: heap in use (after two collections) 4.00 MiB after 100 finished executions and 4.20 MiB after 1000; ratio 1.05; target < 1.10×: met (0.05× under).",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if n := strings.Count(doc, "### W5 task executions"); n != 2 {
		t.Errorf("report has %d execution sections, want 2 (SQLite and PostgreSQL)", n)
	}
}
