package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/job"
)

const benchKind = "bench"

// oursQueue drives the raw scheduler: job.New with the library's own
// database setup (internal/sqlitedb, or internal/pgdb with its
// notification listener on PostgreSQL) and its defaults, except the
// workload's concurrency.
//
// On SQLite the handler returns nothing, as the SQLite tables have always
// measured it. On PostgreSQL (but in configuration "no-artifact", which
// shows what the artifact costs) every job stores an artifact the way a
// task execution does: the handler returns a job.BatchCommitter whose
// artifact is inserted in the transaction that completes the job (one
// artifact.Manager.InsertMany for the jobs completing together), with data
// shaped like a function task's artifact.
type oursQueue struct {
	spec      Spec
	h         hooks
	db        *gorm.DB
	sched     *job.Scheduler
	artifacts *artifact.Manager
}

func newOursQueue(ctx context.Context, spec Spec, h hooks) (*oursQueue, error) {
	var db *gorm.DB
	var err error
	if spec.Engine == enginePG {
		db, err = pgdb.Open(spec.DB, pgdb.Config{})
	} else {
		db, err = sqlitedb.Open(spec.DB, sqlitedb.Config{Synchronous: spec.Synchronous})
	}
	if err != nil {
		return nil, err
	}
	if err := job.Migrate(ctx, db); err != nil {
		return nil, err
	}
	q := &oursQueue{spec: spec, h: h, db: db}
	if spec.Engine == enginePG && spec.Config != "no-artifact" {
		if err := artifact.Migrate(ctx, db); err != nil {
			return nil, err
		}
		q.artifacts = artifact.NewManager(db, &artifact.Hierarchy{Name: "bench", LevelLabels: map[int]string{0: "execution"}})
	}
	// The scheduler exists (unstarted) before the backlog is written, so
	// insertBulk can submit the backlog to it. A backlog larger than the
	// default bound of pending jobs raises the bound to fit it.
	cfg := job.Config{MaxConcurrency: spec.Concurrency, Observer: observer{h.onDone}, Logger: slog.New(slog.DiscardHandler)}
	if spec.Jobs > job.DefaultMaxPending {
		cfg.MaxPending = spec.Jobs
	}
	if spec.Engine == enginePG {
		cfg.Listener = pgdb.NewListener(spec.DB, slog.New(slog.DiscardHandler))
	}
	if spec.Config == "rescue" {
		cfg.RetryInterrupted = 3
	}
	q.sched = job.New(db, cfg)
	if err := q.sched.Handle(benchKind, q.handle); err != nil {
		return nil, err
	}
	return q, nil
}

// executionArtifact is the data a no-op function task's execution stores:
// the task snapshot, the result, no error and the duration.
type executionArtifact struct {
	Task struct {
		ID         string          `json:"id"`
		Command    string          `json:"command"`
		TaskType   string          `json:"task_type"`
		Parameters json.RawMessage `json:"parameters"`
		CreatedAt  string          `json:"created_at"`
		UpdatedAt  string          `json:"updated_at"`
	} `json:"task"`
	Result          json.RawMessage `json:"result"`
	Error           *string         `json:"error"`
	DurationSeconds float64         `json:"duration_seconds"`
}

// committedArtifact stores its data as a new artifact in the job's
// completion transaction.
type committedArtifact struct {
	m    *artifact.Manager
	data json.RawMessage
}

func (c committedArtifact) CommitJob(tx *gorm.DB) (string, error) { return c.m.Insert(tx, c.data) }

// Batcher lets the scheduler store the artifacts of jobs completing
// together with one statement, as a task execution's result does.
func (c committedArtifact) Batcher() job.Batcher { return artifactBatch{c.m} }

// artifactBatch stores the artifacts of several jobs with one INSERT.
type artifactBatch struct{ m *artifact.Manager }

func (b artifactBatch) CommitJobs(tx *gorm.DB, results []job.BatchCommitter, ids []string) error {
	data := make([]json.RawMessage, len(results))
	for i, r := range results {
		data[i] = r.(committedArtifact).data
	}
	return b.m.InsertMany(tx, ids, data)
}

// bulkBatch is how many jobs one SubmitMany call of the backlog stores,
// as River's InsertManyFast batches are in this harness.
const bulkBatch = 1000

// insertBulk submits the backlog of ours' W1 (and W4 three-node) with
// SubmitMany, bulkBatch jobs per call (one transaction each). q.sched is
// built but not started when it runs, so every job is stored pending;
// Start then runs them in submission order.
func (q *oursQueue) insertBulk(ctx context.Context, ps []payload) error {
	args := make([]any, 0, min(len(ps), bulkBatch))
	for batch := range slices.Chunk(ps, bulkBatch) {
		args = args[:0]
		for _, p := range batch {
			args = append(args, p)
		}
		if _, err := q.sched.SubmitMany(ctx, benchKind, args); err != nil {
			return err
		}
	}
	return nil
}

type observer struct{ onDone func(payload) }

func (o observer) JobChanged(j *job.Job, _ job.Status) {
	if j.Status != job.StatusCompleted {
		return
	}
	var p payload
	if json.Unmarshal(j.Args, &p) == nil {
		o.onDone(p)
	}
}

func (q *oursQueue) start(ctx context.Context) error {
	return q.sched.Start(ctx)
}

func (q *oursQueue) handle(ctx context.Context, run *job.Run) (any, error) {
	var p payload
	if err := json.Unmarshal(run.Job.Args, &p); err != nil {
		return nil, err
	}
	t0 := time.Now()
	q.h.onStart(p)
	if p.SleepMS > 0 {
		if err := sleepCtx(ctx, time.Duration(p.SleepMS)*time.Millisecond); err != nil {
			return nil, err
		}
	}
	if q.artifacts == nil {
		return nil, nil
	}
	var a executionArtifact
	a.Task.ID, a.Task.Command, a.Task.TaskType = benchTaskID, "noop", "python"
	a.Task.Parameters = json.RawMessage(`{}`)
	a.Task.CreatedAt, a.Task.UpdatedAt = benchTaskTime, benchTaskTime
	a.Result = json.RawMessage(`0`)
	a.DurationSeconds = time.Since(t0).Seconds()
	raw, err := json.Marshal(a)
	if err != nil {
		return nil, err
	}
	return committedArtifact{m: q.artifacts, data: raw}, nil
}

// The task an artifact's snapshot names (no task row exists: the raw
// scheduler runs the jobs).
const (
	benchTaskID   = "01JBENCH0000000000000000NO"
	benchTaskTime = "2026-01-01T00:00:00.000000Z"
)

func (q *oursQueue) submit(ctx context.Context, p payload) error {
	_, err := q.sched.Submit(ctx, benchKind, p)
	return err
}

func (q *oursQueue) stop(ctx context.Context) error {
	if q.sched != nil {
		if err := q.sched.Stop(ctx); err != nil {
			return err
		}
	}
	sqlDB, err := q.db.DB()
	if err != nil {
		return err
	}
	return sqlDB.Close()
}
