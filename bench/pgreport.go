package main

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// writePGSection renders the PostgreSQL matrix: a headline table of
// medians, the ratio of ours to each River configuration (both from the
// same run), the detailed tables and the profile of ours.
func writePGSection(b *bytes.Buffer, rf *resultFile) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	runs := rf.runs
	p("## PostgreSQL\n\n")
	for _, l := range rf.pg {
		if l.Skipped != "" {
			p("A PostgreSQL run was skipped: %s.\n\n", l.Skipped)
			continue
		}
		keys := make([]string, 0, len(l.Settings))
		for k := range l.Settings {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var kv []string
		for _, k := range keys {
			kv = append(kv, fmt.Sprintf("`%s=%s`", k, l.Settings[k]))
		}
		p("Server: %s; %s.\n\n", l.Source, strings.Join(kv, ", "))
	}
	p("Every cell is run %s (fewer repetitions than SQLite's, for the time budget); tables show the median and, in parentheses, the minimum and maximum. ", repsText(runs, true))
	p("**Ours stores an artifact per job** (inserted in the transaction that completes the job, as a task execution does); **River stores nothing** (its worker returns nil). ")
	p("The machine has 2 cores shared with other work while the bench ran, so absolute figures are noisy; compare the ratios, which come from the same run.\n\n")
	b.WriteString(pgSetupText)

	systems := []sysConf{{"ours", "defaults"}, {"river", "documented"}, {"river", "tuned"}}
	get := func(sc sysConf, w string, c int, lbl, metric string) float64 {
		return findMedian(runs, Spec{Workload: w, Engine: enginePG, System: sc.system, Config: sc.config, Concurrency: c, RateLabel: lbl}, metric)
	}
	w2 := fmt.Sprintf("%d/s", pgW2Rate)
	p("### Summary (medians)\n\n")
	p("| system | W1 c=1 jobs/s | W1 c=8 jobs/s | W1 c=64 jobs/s | W2 %s done p50 ms | W2 %s done p99 ms | W4 three nodes jobs/s |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n", w2, w2)
	row := func(name string, f func(w string, c int, lbl, metric string) float64) {
		p("| %s | %s | %s | %s | %s | %s | %s |\n", name,
			fmtNum(f("w1", 1, "", "jobs_per_s")), fmtNum(f("w1", 8, "", "jobs_per_s")), fmtNum(f("w1", 64, "", "jobs_per_s")),
			fmtNum(f("w2", 8, w2, "done_p50_ms")), fmtNum(f("w2", 8, w2, "done_p99_ms")),
			fmtNum(f("w4n", pgW4NodeConc, "", "jobs_per_s")))
	}
	for _, sc := range systems {
		row(label(Spec{System: sc.system, Config: sc.config}), func(w string, c int, lbl, m string) float64 { return get(sc, w, c, lbl, m) })
	}
	for _, peer := range systems[1:] {
		row("ours / "+label(Spec{System: peer.system, Config: peer.config}), func(w string, c int, lbl, m string) float64 {
			return get(systems[0], w, c, lbl, m) / get(peer, w, c, lbl, m)
		})
	}
	p("\nRatios: for jobs/s above 1 means ours is faster; for latencies below 1 means ours is lower. A cell missing from this run shows n/a.\n\n")

	if cs := cells(runs, "w1", enginePG); len(cs) > 0 {
		p("### W1 burn-down\n\n| system | concurrency | jobs/s | CPU s per 1,000 jobs: bench process | CPU s per 1,000 jobs: server | peak RSS MB | drained |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, s := range cs {
			p("| %s | %d | %s | %s | %s | %s | %s |\n", label(s), s.Concurrency,
				fmtSummary(cellSummary(runs, s, "jobs_per_s")), fmtSummary(cellSummary(runs, s, "cpu_s_per_1k_jobs")),
				fmtSummary(cellSummary(runs, s, "server_cpu_s_per_1k_jobs")),
				fmtSummary(cellSummary(runs, s, "peak_rss_mb")), fmtSummary(cellSummary(runs, s, "done")))
		}
		p("\nThe bench process's CPU covers the drain only; the server's covers the whole run (schema, insert of the backlog, drain, stop), from the postmaster's and its children's CPU times, so it overstates the drain's share somewhat for every system alike.\n\n")
		var c1 []Spec
		for _, s := range cs {
			if s.Concurrency == 1 {
				c1 = append(c1, s)
			}
		}
		if len(c1) > 0 {
			p("#### W1 at concurrency 1, step by step (medians)\n\n| system | done → next start ms | start → done ms | share of jobs started before the previous one's completion was stored |\n| --- | ---: | ---: | ---: |\n")
			for _, s := range c1 {
				p("| %s | %s | %s | %s |\n", label(s), fmtSummary(cellSummary(runs, s, "c1_handover_p50_ms")),
					fmtSummary(cellSummary(runs, s, "c1_start_to_done_p50_ms")), fmtSummary(cellSummary(runs, s, "c1_started_before_previous_done")))
			}
			p("\n*done* is when the system reports the completion stored (ours: its observer after the commit; River: its job_completed event). River's completer stores completions asynchronously in batches, so its next job starts while the previous completion is still being written; ours frees the slot only after the completion committed.\n\n")
		}
	}
	if cs := cells(runs, "w2", enginePG); len(cs) > 0 {
		p("### W2 steady latency (concurrency 8)\n\n| system | rate | achieved jobs/s | enqueue→start p50 / p95 / p99 ms | enqueue→done p50 / p95 / p99 ms | backlog at end |\n| --- | --- | ---: | ---: | ---: | ---: |\n")
		for _, s := range cs {
			p("| %s | %s | %s | %s / %s / %s | %s / %s / %s | %s |\n", label(s), s.RateLabel,
				fmtSummary(cellSummary(runs, s, "achieved_rate")),
				fmtSummary(cellSummary(runs, s, "start_p50_ms")), fmtSummary(cellSummary(runs, s, "start_p95_ms")), fmtSummary(cellSummary(runs, s, "start_p99_ms")),
				fmtSummary(cellSummary(runs, s, "done_p50_ms")), fmtSummary(cellSummary(runs, s, "done_p95_ms")), fmtSummary(cellSummary(runs, s, "done_p99_ms")),
				fmtSummary(cellSummary(runs, s, "backlog_at_end")))
		}
		p("\n")
	}
	writeExecSection(b, runs, enginePG)
	if cs := cells(runs, "w4n", enginePG); len(cs) > 0 {
		p("### W4 three nodes on one database\n\n| system | workers per node | jobs/s (all nodes) | CPU s per 1,000 jobs: bench process | CPU s per 1,000 jobs: server | smallest node's share | duplicate runs | completed twice | drained |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, s := range cs {
			p("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", label(s), s.Concurrency,
				fmtSummary(cellSummary(runs, s, "jobs_per_s")), fmtSummary(cellSummary(runs, s, "cpu_s_per_1k_jobs")),
				fmtSummary(cellSummary(runs, s, "server_cpu_s_per_1k_jobs")),
				fmtSummary(cellSummary(runs, s, "min_node_share")), fmtSummary(cellSummary(runs, s, "duplicate_runs")),
				fmtSummary(cellSummary(runs, s, "completed_twice")), fmtSummary(cellSummary(runs, s, "done")))
		}
		p("\n")
	}
	for _, pr := range rf.profiles {
		p("### Where ours spends its time: CPU profile, W1 at concurrency 8\n\n")
		if pr.Error != "" {
			p("The profiled run failed: %s\n\n", pr.Error)
			continue
		}
		p("One extra run of ours under `runtime/pprof` (not counted in the cells above): %s jobs/s while profiled. ", fmtNum(pr.Jobs))
		p("The profile covers the whole child process (start-up, the bulk insert of the backlog, the drain); the bench process's CPU is about all of ours, the PostgreSQL server's is not in it. ")
		p("The percentage on the Duration line is the process's CPU time over the wall time (100 %% = one core busy): well below that, the process mostly waits for the server. ")
		p("Regenerate with `go tool pprof -top -cum <file>`.\n\n")
		p("Top functions by cumulative share:\n\n```\n%s\n%s\n```\n\n", strings.Join(pr.Header, "\n"), strings.Join(pr.Cum, "\n"))
		p("Top functions by own (flat) share:\n\n```\n%s\n```\n\n", strings.Join(pr.Flat, "\n"))
		if len(pr.Waits) > 0 {
			p("What the server sessions of the same run were doing, sampled from `pg_stat_activity` every 10 ms (%d samples; a session counts once per sample; *CPU* = executing with no wait event; `IO:WALSync` = waiting for the commit's WAL flush; `Lock:object` at commit = waiting for the lock PostgreSQL takes to queue a transaction's NOTIFY, which serialises notifying commits):\n\n```\n%s\n```\n\n", pr.Samples, strings.Join(pr.Waits, "\n"))
		}
	}
}

const pgSetupText = `- **Server**: unless ` + "`-pg URL`" + ` is given, the bench starts a throwaway cluster from the installed binaries (initdb, postgres; as root they run as the postgres user) in a fresh temporary directory on the machine's disk, listening on a Unix socket only. Durability is PostgreSQL's default: ` + "`fsync=on`, `synchronous_commit=on`, `full_page_writes=on`" + `; the only changes are ` + "`max_connections=300`" + ` (three nodes each hold a pool) and the socket. Each run gets a fresh database (CREATE DATABASE, dropped after the run); systems run one after another, never at once; each run is a separate child process with GOMAXPROCS=2.
- **Ours**: the raw scheduler (` + "`job.New`" + `) on ` + "`internal/pgdb.Open(url, pgdb.Config{})`" + ` (its default pool of 16 connections) with ` + "`pgdb.NewListener`" + ` as the notification listener, its defaults but MaxConcurrency. Each job's handler returns a ` + "`job.BatchCommitter`" + ` whose artifact (about 240 bytes of JSON shaped like a no-op function task's artifact) is stored in the transaction that completes the job, the artifacts of jobs completing together with one ` + "`artifact.Manager.InsertMany`" + `: what a task execution stores, the same way, without the task look-up. The W1 backlog is submitted with ` + "`Scheduler.SubmitMany`" + ` in batches of 1,000 (one transaction each) before the scheduler starts, which stores the jobs pending; the nodes claim them oldest first. *ours no-artifact* (W1 only) is the same with a handler that returns nothing, to show what the artifact costs.
- **River**: ` + "`riverpgxv5`" + ` on a ` + "`pgxpool`" + ` with pgx's default pool size, ` + "`rivermigrate`" + ` up. *documented* = River's defaults (FetchCooldown 100 ms, FetchPollInterval 1 s; LISTEN/NOTIFY on); *tuned* = FetchCooldown 2 ms, FetchPollInterval 20 ms. The W1 backlog is inserted with InsertManyFast in batches of 1,000. *Done* is River's job_completed event, after its completer stored the batch.
- **W1**: N no-op jobs inserted before the workers start, drained at concurrency 1, 8, 64, cut at the cap. **W2**: a paced submitter at 200 jobs/s (each job's enqueue time is its scheduled slot), concurrency 8. **W4 three nodes**: three schedulers (ours) or three River clients, each with its own pool, in one process on one database, 8 workers each, draining a backlog of N no-op jobs; every start and completion of every job is counted, so a job run twice would show.

`
