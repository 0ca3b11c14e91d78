package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"time"

	_ "github.com/mattn/go-sqlite3" // the driver the library ships
)

// queue is one system under test, as the workloads drive it. insertBulk
// runs before start; submit after it.
type queue interface {
	insertBulk(ctx context.Context, ps []payload) error
	start(ctx context.Context) error
	submit(ctx context.Context, p payload) error
	stop(ctx context.Context) error
}

// hooks are the harness's callbacks. onStart runs when a job's work
// begins; onDone when its completion is stored (goqite's runner: when the
// handler returned, just before it deletes the message).
type hooks struct {
	onStart func(p payload)
	onDone  func(p payload)
}

func newQueue(ctx context.Context, spec Spec, h hooks) (queue, error) {
	if h.onStart == nil {
		h.onStart = func(payload) {}
	}
	if h.onDone == nil {
		h.onDone = func(payload) {}
	}
	switch spec.System {
	case "ours":
		return newOursQueue(ctx, spec, h)
	case "river":
		if spec.Engine == enginePG {
			return newRiverPGQueue(ctx, spec, h)
		}
		return newRiverQueue(ctx, spec, h)
	case "goqite":
		return newGoqiteQueue(ctx, spec, h)
	}
	return nil, fmt.Errorf("unknown system %q", spec.System)
}

// openPeerDB opens the SQLite file of a peer on the mattn driver with the
// pragmas every system gets: WAL, a busy timeout and the matrix's
// synchronous mode; one connection, as River and goqite document.
func openPeerDB(path, synchronous string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", "30000")
	q.Set("_synchronous", synchronous)
	db, err := sql.Open("sqlite3", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	if err := db.Ping(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// shellCommand is the W3 command: 1,024 bytes on stdout.
const shellCommand = "printf %1024s x"

// shellResult is what every system stores of a W3 job.
type shellResult struct {
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	ExitCode int    `json:"exit_code"`
}

// runShell runs the W3 command the plain way: the baseline loop and the
// peers' workers use it.
func runShell(ctx context.Context) (shellResult, error) {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", shellCommand)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		return shellResult{}, err
	}
	return shellResult{Stdout: out.String(), Stderr: errb.String(), ExitCode: code}, nil
}

// sleepCtx sleeps d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// dbSize is the size of the database file with its WAL and shared memory.
func dbSize(path string) int64 {
	var n int64
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if fi, err := os.Stat(path + suffix); err == nil {
			n += fi.Size()
		}
	}
	return n
}
