package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

// riverPGQueue is River on its pgx v5 driver with a pgxpool of its
// defaults. "documented" keeps River's defaults; "tuned" fetches sooner
// (the same settings as on SQLite). Its jobs store no output: a no-op
// worker returns nil.
type riverPGQueue struct {
	spec   Spec
	h      hooks
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx]
	cancel func()
	done   chan struct{}
}

func newRiverPGQueue(ctx context.Context, spec Spec, h hooks) (*riverPGQueue, error) {
	pool, err := pgxpool.New(ctx, spec.DB)
	if err != nil {
		return nil, err
	}
	drv := riverpgxv5.New(pool)
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		pool.Close()
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{h: h})
	cfg := &river.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: max(spec.Concurrency, 1)}},
		Workers: workers,
	}
	if spec.Config == "tuned" {
		cfg.FetchCooldown = 2 * time.Millisecond
		cfg.FetchPollInterval = 20 * time.Millisecond
	}
	client, err := river.NewClient(drv, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return &riverPGQueue{spec: spec, h: h, pool: pool, client: client}, nil
}

func (q *riverPGQueue) insertBulk(ctx context.Context, ps []payload) error {
	return riverInsertBulk(ctx, q.client, ps)
}

func (q *riverPGQueue) start(ctx context.Context) error {
	events, cancel := q.client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 1 << 20, Kinds: []river.EventKind{river.EventKindJobCompleted},
	})
	q.cancel, q.done = cancel, make(chan struct{})
	go forwardRiverDone(events, q.h.onDone, q.done)
	return q.client.Start(ctx)
}

func (q *riverPGQueue) submit(ctx context.Context, p payload) error {
	_, err := q.client.Insert(ctx, riverArgs{p}, nil)
	return err
}

func (q *riverPGQueue) stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if q.cancel != nil {
		q.cancel()
		<-q.done
	}
	q.pool.Close()
	return err
}
