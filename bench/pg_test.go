package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPGReportFromTwoFiles writes a SQLite result file and a PostgreSQL
// one, reads both as one report and checks the PostgreSQL summary rows:
// the medians of each system and ours' ratio to River in the same run.
func TestPGReportFromTwoFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, lines ...any) string {
		var b strings.Builder
		for _, l := range lines {
			raw, err := json.Marshal(l)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(raw)
			b.WriteByte('\n')
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	type run struct {
		Type string `json:"type"`
		Result
	}
	end := map[string]any{"type": "end", "seconds": 1}
	meta := func(args ...string) map[string]any {
		return map[string]any{"type": "meta", "mode": "full", "args": args, "started": "2026-01-01T00:00:00Z"}
	}
	sqlite := write("sqlite.jsonl", meta("-engines", "sqlite"),
		run{"run", Result{Spec: Spec{Workload: "w1", System: "ours", Config: "defaults", Synchronous: "NORMAL", Concurrency: 8, Rep: 1}, Metrics: map[string]float64{"jobs_per_s": 2000}}},
		end)
	var pgRuns []any
	pgRuns = append(pgRuns, meta("-engines", "postgres"), pgLine{Type: "postgres", Source: "test", Settings: map[string]string{"fsync": "on"}})
	for rep, v := range []float64{100, 300, 200} { // median 200
		pgRuns = append(pgRuns,
			run{"run", Result{Spec: Spec{Workload: "w1", Engine: enginePG, System: "ours", Config: "defaults", Concurrency: 8, Jobs: 10, Rep: rep + 1}, Metrics: map[string]float64{"jobs_per_s": v}}},
			run{"run", Result{Spec: Spec{Workload: "w1", Engine: enginePG, System: "river", Config: "tuned", Concurrency: 8, Jobs: 10, Rep: rep + 1}, Metrics: map[string]float64{"jobs_per_s": 2 * v}}},
			run{"run", Result{Spec: Spec{Workload: "w2", Engine: enginePG, System: "ours", Config: "defaults", Concurrency: 8, Rate: 200, RateLabel: "200/s", Rep: rep + 1}, Metrics: map[string]float64{"done_p50_ms": v / 100, "done_p99_ms": v / 10}}},
			run{"run", Result{Spec: Spec{Workload: "w2", Engine: enginePG, System: "river", Config: "tuned", Concurrency: 8, Rate: 200, RateLabel: "200/s", Rep: rep + 1}, Metrics: map[string]float64{"done_p50_ms": v / 50, "done_p99_ms": v / 5}}},
		)
	}
	pgRuns = append(pgRuns, profileLine{Type: "profile", Jobs: 150, Header: []string{"Duration: 1s"}, Cum: []string{"0 0% 0% 10ms 50% job.(*Scheduler).fill"}}, end)
	pg := write("pg.jsonl", pgRuns...)

	rf, err := readResults(sqlite, pg)
	if err != nil {
		t.Fatal(err)
	}
	if !rf.finished {
		t.Error("both files end with an end line, but the report says the run did not finish")
	}
	if diff := cmp.Diff([]string{"NORMAL", enginePG}, matrices(rf.runs)); diff != "" {
		t.Errorf("matrices (-want +got):\n%s", diff)
	}
	md := filepath.Join(dir, "BENCHMARKS.md")
	if err := writeMarkdown(md, rf, sqlite); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(l, "| ours defaults |") || strings.HasPrefix(l, "| river tuned |") || strings.HasPrefix(l, "| ours / river tuned |") {
			got = append(got, l)
		}
	}
	want := []string{
		// The summary table: W1 c=1, 8, 64, W2 p50, p99, W4 three nodes.
		"| ours defaults | n/a | 200 | n/a | 2.00 | 20.0 | n/a |",
		"| river tuned | n/a | 400 | n/a | 4.00 | 40.0 | n/a |",
		"| ours / river tuned | n/a | 0.50 | n/a | 0.50 | 0.50 | n/a |",
		// The W1 detail table.
		"| ours defaults | 8 | 200 (100–300) | n/a | n/a | n/a | n/a |",
		"| river tuned | 8 | 400 (200–600) | n/a | n/a | n/a | n/a |",
	}
	var gotPG []string
	for _, l := range got {
		if !strings.Contains(l, "| 2000 |") { // the SQLite W1 row
			gotPG = append(gotPG, l)
		}
	}
	if diff := cmp.Diff(want, gotPG[:len(want)]); diff != "" {
		t.Errorf("PostgreSQL rows (-want +got):\n%s\nreport:\n%s", diff, raw)
	}
	for _, s := range []string{"## synchronous=NORMAL", "## PostgreSQL", "`fsync=on`", "job.(*Scheduler).fill", "go run . -engines postgres"} {
		if !strings.Contains(string(raw), s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

// TestThrowawayCluster starts the bench's own PostgreSQL cluster (skipped
// when the server binaries are missing) and checks that it runs with
// PostgreSQL's default durability and gives each run a fresh database.
func TestThrowawayCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a PostgreSQL cluster")
	}
	srv, err := startPG()
	if err != nil {
		t.Skipf("no PostgreSQL: %v", err)
	}
	defer srv.stop()
	ctx := context.Background()
	got := srv.settings(ctx)
	for k, v := range map[string]string{"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"} {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for i := range 2 {
		u, err := srv.createDB(ctx, "bench_test")
		if err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("pgx", u)
		if err != nil {
			t.Fatal(err)
		}
		var n int
		err = db.QueryRowContext(ctx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n)
		if err == nil && n != 0 {
			err = fmt.Errorf("fresh database %d has %d tables", i, n)
		}
		if err == nil {
			_, err = db.ExecContext(ctx, "CREATE TABLE leftover (id int)")
		}
		_ = db.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	srv.dropDB("bench_test")
}
