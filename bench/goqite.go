package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"sync"
	"time"

	"maragu.dev/goqite"
	"maragu.dev/goqite/jobs"
)

// goqiteSchema is the table, trigger and index goqite v0.4.0 documents for
// SQLite (its schema_sqlite.sql), which applications create themselves.
const goqiteSchema = `
create table goqite (
  id text primary key default ('m_' || lower(hex(randomblob(16)))),
  created text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  updated text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  queue text not null,
  body blob not null,
  timeout text not null default (strftime('%Y-%m-%dT%H:%M:%fZ')),
  received integer not null default 0,
  priority integer not null default 0
) strict;
create trigger goqite_updated_timestamp after update on goqite begin
  update goqite set updated = strftime('%Y-%m-%dT%H:%M:%fZ') where id = old.id;
end;
create index goqite_queue_priority_created_idx on goqite (queue, priority desc, created);
create table bench_results (
  message_id text primary key,
  seq integer not null,
  stdout text not null,
  stderr text not null,
  exit_code integer not null
) strict;
`

const goqiteName = "bench"

// goqiteQueue is goqite's queue with its job runner. "documented" keeps
// the runner's defaults (100 ms poll, 5 s message timeout); "tuned" polls
// every 10 ms; "rescue" (W4) also shortens the message timeout and its
// extension to 1 s, so a crashed run's messages come back sooner.
//
// W3 uses a receive loop of our own instead of the runner: the runner
// deletes a message outside the handler, and W3 stores each job's output
// in the transaction that deletes its message.
type goqiteQueue struct {
	spec   Spec
	h      hooks
	db     *sql.DB
	q      *goqite.Queue
	runner *jobs.Runner
	poll   time.Duration
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newGoqiteQueue(ctx context.Context, spec Spec, h hooks) (*goqiteQueue, error) {
	db, err := openPeerDB(spec.DB, spec.Synchronous)
	if err != nil {
		return nil, err
	}
	var exists int
	if err := db.QueryRowContext(ctx, `select count(*) from sqlite_master where name = 'goqite'`).Scan(&exists); err != nil {
		return nil, err
	}
	if exists == 0 {
		if _, err := db.ExecContext(ctx, goqiteSchema); err != nil {
			return nil, err
		}
	}
	opts := goqite.NewOpts{DB: db, Name: goqiteName}
	ropts := jobs.NewRunnerOpts{Limit: max(spec.Concurrency, 1)}
	switch spec.Config {
	case "tuned":
		ropts.PollInterval = 10 * time.Millisecond
	case "rescue":
		ropts.PollInterval = 10 * time.Millisecond
		opts.Timeout = time.Second
		ropts.Extend = time.Second
	}
	g := &goqiteQueue{spec: spec, h: h, db: db, poll: ropts.PollInterval}
	if g.poll == 0 {
		g.poll = 100 * time.Millisecond // the runner's default
	}
	g.q = goqite.New(opts)
	ropts.Queue = g.q
	g.runner = jobs.NewRunner(ropts)
	g.runner.Register(benchKind, g.handle)
	return g, nil
}

func (g *goqiteQueue) handle(ctx context.Context, body []byte) error {
	var p payload
	if err := json.Unmarshal(body, &p); err != nil {
		return err
	}
	g.h.onStart(p)
	if p.SleepMS > 0 {
		if err := sleepCtx(ctx, time.Duration(p.SleepMS)*time.Millisecond); err != nil {
			return err
		}
	}
	g.h.onDone(p)
	return nil
}

func (g *goqiteQueue) ownLoop() bool { return g.spec.Workload == "w3" }

func (g *goqiteQueue) insertBulk(ctx context.Context, ps []payload) error {
	for len(ps) > 0 {
		n := min(len(ps), 1000)
		tx, err := g.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		for _, p := range ps[:n] {
			body, err := json.Marshal(p)
			if err != nil {
				_ = tx.Rollback()
				return err
			}
			if g.ownLoop() {
				err = g.q.SendTx(ctx, tx, goqite.Message{Body: body})
			} else {
				_, err = jobs.CreateTx(ctx, tx, g.q, benchKind, goqite.Message{Body: body})
			}
			if err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		ps = ps[n:]
	}
	return nil
}

func (g *goqiteQueue) start(ctx context.Context) error {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g.cancel = cancel
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if g.ownLoop() {
			g.loop(runCtx)
			return
		}
		g.runner.Start(runCtx)
	}()
	return nil
}

// loop receives messages while fewer than Concurrency run, runs the shell
// command, and stores the result and deletes the message in one
// transaction.
func (g *goqiteQueue) loop(ctx context.Context) {
	sem := make(chan struct{}, max(g.spec.Concurrency, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		m, err := g.q.ReceiveAndWait(ctx, g.poll)
		if err != nil || m == nil {
			<-sem
			if ctx.Err() != nil {
				return
			}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var p payload
			if json.Unmarshal(m.Body, &p) != nil {
				return
			}
			g.h.onStart(p)
			res, err := runShell(ctx)
			if err != nil {
				return
			}
			tx, err := g.db.BeginTx(ctx, nil)
			if err != nil {
				return
			}
			if _, err := tx.ExecContext(ctx, `insert into bench_results (message_id, seq, stdout, stderr, exit_code) values (?, ?, ?, ?, ?)`,
				string(m.ID), p.Seq, res.Stdout, res.Stderr, res.ExitCode); err != nil {
				_ = tx.Rollback()
				return
			}
			if err := g.q.DeleteTx(ctx, tx, m.ID); err != nil {
				_ = tx.Rollback()
				return
			}
			if tx.Commit() == nil {
				g.h.onDone(p)
			}
		}()
	}
}

func (g *goqiteQueue) submit(ctx context.Context, p payload) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if g.ownLoop() {
		return g.q.Send(ctx, goqite.Message{Body: body})
	}
	_, err = jobs.Create(ctx, g.q, benchKind, goqite.Message{Body: body})
	return err
}

// remaining counts the messages not yet deleted that can still be received.
func (g *goqiteQueue) remaining(ctx context.Context) (int, error) {
	var n int
	err := g.db.QueryRowContext(ctx, `select count(*) from goqite where received < 3`).Scan(&n)
	return n, err
}

func (g *goqiteQueue) stop(ctx context.Context) error {
	if g.cancel != nil {
		g.cancel()
		g.wg.Wait()
	}
	return g.db.Close()
}
