package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
)

// The plain-SQL floor of the execution table: the lifecycle of a no-op
// function task's execution (store the job, claim it, store its artifact
// and complete it) written as hand-made statements on one connection, on
// the library's own tables, with nothing else going on. It is what the
// database allows; the library's rate in the same run is read against it.
//
// Two shapes:
//
//   - floorThree ("3tx"): three transactions per round, each carrying c
//     jobs: insert c pending jobs; claim c (oldest first); insert c
//     artifacts and mark the c jobs completed. At c=1 this is the
//     three-commit floor: one commit per step of one execution.
//   - floorTwo ("2tx", c=1 only): two transactions per execution: the job
//     stored already running (a slot is free), then artifact and
//     completion together. The library at c=1 should approach this.
const (
	sysFloor   = "floor"
	floorThree = "3tx"
	floorTwo   = "2tx"
)

// floorDB is one connection to a migrated database and the statements of
// the floor, prepared once for a batch size.
type floorDB struct {
	db   *sql.DB
	pg   bool
	node string
	data []byte // the artifact, encoded once

	insertPending, insertRunning, claim, insertArtifacts, complete *sql.Stmt
	batch                                                          int
}

// openFloor migrates the library's tables with the library itself, then
// reopens the database as one plain connection: SQLite with WAL, a busy
// timeout and the matrix's synchronous mode (what every system in the
// bench gets), PostgreSQL through pgx.
func openFloor(ctx context.Context, spec Spec) (*floorDB, error) {
	var gdb *gorm.DB
	var err error
	pg := spec.Engine == enginePG
	if pg {
		gdb, err = pgdb.Open(spec.DB, pgdb.Config{})
	} else {
		gdb, err = sqlitedb.Open(spec.DB, sqlitedb.Config{Synchronous: spec.Synchronous})
	}
	if err != nil {
		return nil, err
	}
	err = job.Migrate(ctx, gdb)
	if err == nil {
		err = artifact.Migrate(ctx, gdb)
	}
	if sqlDB, e := gdb.DB(); e == nil {
		_ = sqlDB.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	var db *sql.DB
	if pg {
		if db, err = sql.Open("pgx", spec.DB); err == nil {
			db.SetMaxOpenConns(1)
			db.SetMaxIdleConns(1)
			err = db.PingContext(ctx)
		}
	} else {
		db, err = openPeerDB(spec.DB, cmpOr(spec.Synchronous, "NORMAL"))
	}
	if err != nil {
		return nil, err
	}
	data, err := json.Marshal(noopArtifact(0))
	if err != nil {
		return nil, err
	}
	return &floorDB{db: db, pg: pg, node: wire.NewID(), data: data}, nil
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// noopArtifact is the data a no-op function task's execution stores.
func noopArtifact(d time.Duration) executionArtifact {
	var a executionArtifact
	a.Task.ID, a.Task.Command, a.Task.TaskType = benchTaskID, "noop", "python"
	a.Task.Parameters = json.RawMessage(`{}`)
	a.Task.CreatedAt, a.Task.UpdatedAt = benchTaskTime, benchTaskTime
	a.Result = json.RawMessage(`0`)
	a.DurationSeconds = d.Seconds()
	return a
}

// rebind turns the ? placeholders of q into PostgreSQL's $1, $2, … when
// the floor runs on PostgreSQL. The floor's statements hold no literal
// question marks.
func (f *floorDB) rebind(q string) string {
	if !f.pg {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tuples is "(?, …), (?, …)": rows groups of width placeholders.
func tuples(rows, width int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", width), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(one+", ", rows), ", ")
}

// floorStatements are the floor's statements for a batch of n jobs, with ?
// placeholders (see rebind).
func floorStatements(n int, pg bool) (insertPending, insertRunning, claim, insertArtifacts, complete string) {
	insertPending = `INSERT INTO jobs (id, kind, args, status, submitted_at, attempt, "trigger") VALUES ` + tuples(n, 7)
	insertRunning = `INSERT INTO jobs (id, kind, args, status, submitted_at, started_at, attempt, node, "trigger") VALUES ` + tuples(n, 9)
	lock := ""
	if pg {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	claim = `UPDATE jobs SET status = 'running', started_at = ?, node = ? WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY submitted_at LIMIT ?` + lock + `) RETURNING id`
	insertArtifacts = `INSERT INTO artifacts (id, data, level, tags, created_at, updated_at) VALUES ` + tuples(n, 6)
	// VALUES in FROM names its columns column1, column2 on both engines.
	complete = `UPDATE jobs SET status = 'completed', finished_at = ?, artifact_id = v.column2 FROM (VALUES ` + tuples(n, 2) + `) AS v WHERE jobs.id = v.column1`
	return
}

// prepare prepares the statements for batches of n jobs.
func (f *floorDB) prepare(ctx context.Context, n int) error {
	f.closeStmts()
	ip, ir, cl, ia, co := floorStatements(n, f.pg)
	for _, s := range []struct {
		dst **sql.Stmt
		q   string
	}{{&f.insertPending, ip}, {&f.insertRunning, ir}, {&f.claim, cl}, {&f.insertArtifacts, ia}, {&f.complete, co}} {
		st, err := f.db.PrepareContext(ctx, f.rebind(s.q))
		if err != nil {
			return fmt.Errorf("prepare %.40q: %w", s.q, err)
		}
		*s.dst = st
	}
	f.batch = n
	return nil
}

func (f *floorDB) closeStmts() {
	for _, st := range []*sql.Stmt{f.insertPending, f.insertRunning, f.claim, f.insertArtifacts, f.complete} {
		if st != nil {
			_ = st.Close()
		}
	}
}

func (f *floorDB) close() error {
	f.closeStmts()
	return f.db.Close()
}

// inTx runs fn in one transaction on the floor's connection.
func (f *floorDB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := f.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

var jobArgs = []byte(`{"task_id":"` + benchTaskID + `","task_type":"python"}`)

// roundThree is one round of the three-transaction floor: f.batch jobs
// inserted, claimed, and completed with their artifacts.
func (f *floorDB) roundThree(ctx context.Context) error {
	n := f.batch
	now := time.Now().UTC()
	args := make([]any, 0, 7*n)
	for range n {
		args = append(args, wire.NewID(), "task", jobArgs, "pending", now, 1, "api")
	}
	if err := f.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Stmt(f.insertPending).ExecContext(ctx, args...)
		return err
	}); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	ids := make([]string, 0, n)
	if err := f.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.Stmt(f.claim).QueryContext(ctx, time.Now().UTC(), f.node, n)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return rows.Err()
	}); err != nil {
		return fmt.Errorf("claim: %w", err)
	}
	if len(ids) != n {
		return fmt.Errorf("claim: %d jobs claimed, want %d", len(ids), n)
	}
	if err := f.finish(ctx, ids); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	return nil
}

// roundTwo is one execution of the two-transaction floor (batch 1): the
// job stored running, then its artifact and completion.
func (f *floorDB) roundTwo(ctx context.Context) error {
	if f.batch != 1 {
		return fmt.Errorf("the two-transaction floor runs one job at a time, not %d", f.batch)
	}
	id, now := wire.NewID(), time.Now().UTC()
	if err := f.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.Stmt(f.insertRunning).ExecContext(ctx, id, "task", jobArgs, "running", now, now, 1, f.node, "api")
		return err
	}); err != nil {
		return fmt.Errorf("insert running: %w", err)
	}
	if err := f.finish(ctx, []string{id}); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	return nil
}

// finish stores one artifact per job and completes the jobs, in one
// transaction.
func (f *floorDB) finish(ctx context.Context, ids []string) error {
	now := time.Now().UTC()
	arts := make([]any, 0, 6*len(ids))
	pairs := make([]any, 0, 1+2*len(ids))
	pairs = append(pairs, now)
	for _, id := range ids {
		aid := wire.NewID()
		arts = append(arts, aid, f.data, 0, "[]", now, now)
		pairs = append(pairs, id, aid)
	}
	return f.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.Stmt(f.insertArtifacts).ExecContext(ctx, arts...); err != nil {
			return err
		}
		res, err := tx.Stmt(f.complete).ExecContext(ctx, pairs...)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err == nil && int(n) != len(ids) {
			return fmt.Errorf("%d jobs completed, want %d", n, len(ids))
		}
		return nil
	})
}

// floorRun is the floor's closed loop: rounds of spec.Concurrency jobs
// until the window (spec.Seconds) has passed. A first round, not
// counted, warms the connection and the statements.
func floorRun(ctx context.Context, spec Spec) (map[string]float64, error) {
	f, err := openFloor(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer f.close()
	c := max(spec.Concurrency, 1)
	if err := f.prepare(ctx, c); err != nil {
		return nil, err
	}
	round := f.roundThree
	if spec.Config == floorTwo {
		round = f.roundTwo
	}
	if err := round(ctx); err != nil {
		return nil, err
	}
	window := time.Duration(spec.Seconds * float64(time.Second))
	cpu0 := cpuSeconds()
	t0 := time.Now()
	done := 0
	for time.Since(t0) < window && ctx.Err() == nil {
		if err := round(ctx); err != nil {
			return nil, err
		}
		done += c
	}
	el := time.Since(t0)
	cpu := cpuSeconds() - cpu0
	return map[string]float64{
		"jobs_per_s":        float64(done) / el.Seconds(),
		"done":              float64(done),
		"cpu_s_per_1k_jobs": cpu / float64(max(done, 1)) * 1000,
		"peak_rss_mb":       peakRSSMB(),
	}, nil
}
