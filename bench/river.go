package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
)

type riverArgs struct {
	payload
}

func (riverArgs) Kind() string { return benchKind }

type riverWorker struct {
	river.WorkerDefaults[riverArgs]
	h hooks
}

func (w *riverWorker) Work(ctx context.Context, j *river.Job[riverArgs]) error {
	p := j.Args.payload
	w.h.onStart(p)
	switch {
	case p.SleepMS > 0:
		return sleepCtx(ctx, time.Duration(p.SleepMS)*time.Millisecond)
	case p.Shell:
		res, err := runShell(ctx)
		if err != nil {
			return err
		}
		// Recorded output is stored with the job's completion.
		return river.RecordOutput(ctx, res)
	}
	return nil
}

// riverQueue is River on its SQLite driver. "documented" keeps River's
// defaults; "tuned" polls faster; "rescue" (W4) shortens the stuck-job
// rescue so a crashed run's jobs come back within the measurement.
type riverQueue struct {
	spec   Spec
	h      hooks
	db     *sql.DB
	client *river.Client[*sql.Tx]
	events <-chan *river.Event
	cancel func()
	done   chan struct{}
}

func newRiverQueue(ctx context.Context, spec Spec, h hooks) (*riverQueue, error) {
	db, err := openPeerDB(spec.DB, spec.Synchronous)
	if err != nil {
		return nil, err
	}
	drv := riversqlite.New(db)
	m, err := rivermigrate.New(drv, &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, err
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &riverWorker{h: h})
	conc := max(spec.Concurrency, 1)
	cfg := &river.Config{
		Logger:  slog.New(slog.DiscardHandler),
		Queues:  map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: conc}},
		Workers: workers,
	}
	if spec.Config == "tuned" || spec.Config == "rescue" {
		cfg.FetchCooldown = 2 * time.Millisecond
		cfg.FetchPollInterval = 20 * time.Millisecond
	}
	if spec.Config == "rescue" {
		// RescueStuckJobsAfter must exceed JobTimeout; the jobs take 2 s.
		cfg.JobTimeout = 3 * time.Second
		cfg.RescueStuckJobsAfter = 4 * time.Second
	}
	client, err := river.NewClient(drv, cfg)
	if err != nil {
		return nil, err
	}
	return &riverQueue{spec: spec, h: h, db: db, client: client}, nil
}

func (q *riverQueue) insertBulk(ctx context.Context, ps []payload) error {
	return riverInsertBulk(ctx, q.client, ps)
}

// forwardRiverDone reports each completed River job's payload to onDone
// until events closes, then closes done; for River on either driver.
func forwardRiverDone(events <-chan *river.Event, onDone func(payload), done chan<- struct{}) {
	defer close(done)
	for ev := range events {
		var a riverArgs
		if json.Unmarshal(ev.Job.EncodedArgs, &a) == nil {
			onDone(a.payload)
		}
	}
}

// riverInsertBulk inserts ps with InsertManyFast in batches of 1,000, for
// River on either driver.
func riverInsertBulk[TTx any](ctx context.Context, client *river.Client[TTx], ps []payload) error {
	for len(ps) > 0 {
		n := min(len(ps), 1000)
		params := make([]river.InsertManyParams, n)
		for i := range n {
			params[i] = river.InsertManyParams{Args: riverArgs{ps[i]}}
		}
		if _, err := client.InsertManyFast(ctx, params); err != nil {
			return err
		}
		ps = ps[n:]
	}
	return nil
}

func (q *riverQueue) start(ctx context.Context) error {
	events, cancel := q.client.SubscribeConfig(&river.SubscribeConfig{
		ChanSize: 1 << 20, Kinds: []river.EventKind{river.EventKindJobCompleted},
	})
	q.events, q.cancel, q.done = events, cancel, make(chan struct{})
	go forwardRiverDone(events, q.h.onDone, q.done)
	return q.client.Start(ctx)
}

func (q *riverQueue) submit(ctx context.Context, p payload) error {
	_, err := q.client.Insert(ctx, riverArgs{p}, nil)
	return err
}

func (q *riverQueue) stop(ctx context.Context) error {
	err := q.client.Stop(ctx)
	if q.cancel != nil {
		q.cancel()
		<-q.done
	}
	if cerr := q.db.Close(); err == nil {
		err = cerr
	}
	return err
}
