package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
)

const benchKind = "bench"

// oursQueue drives the raw scheduler: job.New with the library's own
// database setup (internal/sqlitedb) and its defaults, except the
// workload's concurrency.
type oursQueue struct {
	spec  Spec
	h     hooks
	db    *gorm.DB
	sched *job.Scheduler
}

func newOursQueue(ctx context.Context, spec Spec, h hooks) (*oursQueue, error) {
	db, err := sqlitedb.Open(spec.DB, sqlitedb.Config{Synchronous: spec.Synchronous})
	if err != nil {
		return nil, err
	}
	if err := job.Migrate(ctx, db); err != nil {
		return nil, err
	}
	return &oursQueue{spec: spec, h: h, db: db}, nil
}

// insertBulk writes pending rows as Submit stores them; Start's recovery
// then queues them in submission order. The scheduler has no bulk-insert
// API, and Submit dispatches at once, so this is how a backlog is built.
func (q *oursQueue) insertBulk(ctx context.Context, ps []payload) error {
	rows := make([]job.Job, len(ps))
	base := time.Now()
	for i, p := range ps {
		raw, err := json.Marshal(p)
		if err != nil {
			return err
		}
		rows[i] = job.Job{ID: wire.NewID(), Kind: benchKind, Args: raw, Status: job.StatusPending,
			SubmittedAt: base.Add(time.Duration(i) * time.Microsecond).UTC(), Attempt: 1}
	}
	return q.db.WithContext(ctx).CreateInBatches(rows, 500).Error
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
	cfg := job.Config{MaxConcurrency: q.spec.Concurrency, Observer: observer{q.h.onDone}, Logger: slog.New(slog.DiscardHandler)}
	if q.spec.Config == "rescue" {
		cfg.RetryInterrupted = 3
	}
	q.sched = job.New(q.db, cfg)
	if err := q.sched.Handle(benchKind, q.handle); err != nil {
		return err
	}
	return q.sched.Start(ctx)
}

func (q *oursQueue) handle(ctx context.Context, run *job.Run) (any, error) {
	var p payload
	if err := json.Unmarshal(run.Job.Args, &p); err != nil {
		return nil, err
	}
	q.h.onStart(p)
	if p.SleepMS > 0 {
		if err := sleepCtx(ctx, time.Duration(p.SleepMS)*time.Millisecond); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

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
