package sqlitedb

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
)

// Checkpoints run beside the writer, not inside its commits.
//
// In WAL mode SQLite copies the log back into the database file
// (a checkpoint) once the log passes wal_autocheckpoint pages, 1,000 by
// default, and it does so inside the commit that crossed the line: that
// commit pays for copying the pages and for two fsyncs. On the job path,
// where every execution is two small commits, this struck every few hundred
// milliseconds under load and made up the whole latency tail (a commit that
// usually takes well under a millisecond took about 20 ms).
//
// So every connection opened on a WAL file gets a checkpointer: a second
// connection of its own that runs PASSIVE checkpoints, which never wait for
// and never block readers or writers, shortly after commits. The commit
// hook of the main connection only signals it. The in-commit checkpoint
// stays as a backstop at a much larger size, for when the checkpointer
// cannot keep up or cannot run (another process holds the checkpoint lock),
// so the log stays bounded either way.

// backgroundCheckpoints is false only in benchmarks that measure commits
// without the checkpointer.
var backgroundCheckpoints = true

const (
	// checkpointDelay is how long the checkpointer lets commits gather
	// after the first one it hears of: a burst is copied back in one go.
	checkpointDelay = 100 * time.Millisecond
	// backstopPages is wal_autocheckpoint on connections that have a
	// checkpointer (16,384 pages, 64 MiB with 4 KiB pages).
	backstopPages = 16384
)

// walTarget reports whether dsn opens a file in WAL mode, as [Open]
// writes it.
func walTarget(dsn string) bool {
	_, query, ok := strings.Cut(dsn, "?")
	if !ok {
		return false
	}
	q, err := url.ParseQuery(query)
	return err == nil && strings.EqualFold(q.Get("_journal_mode"), "WAL")
}

// checkpointer runs PASSIVE checkpoints on a connection of its own after
// its main connection commits.
type checkpointer struct {
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// startCheckpointer opens a connection to dsn for the checkpointer and
// hooks main's commits to it.
func startCheckpointer(d *sqlite3.SQLiteDriver, dsn string, main *sqlite3.SQLiteConn) (*checkpointer, error) {
	conn, err := d.Open(dsn)
	if err != nil {
		return nil, err
	}
	c := conn.(*sqlite3.SQLiteConn)
	if _, err := main.Exec("PRAGMA wal_autocheckpoint="+strconv.Itoa(backstopPages), nil); err != nil {
		_ = c.Close()
		return nil, err
	}
	cp := &checkpointer{kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	main.RegisterCommitHook(func() int {
		select {
		case cp.kick <- struct{}{}:
		default:
		}
		return 0 // 0 lets the commit go ahead
	})
	go cp.run(c)
	return cp, nil
}

func (cp *checkpointer) run(c *sqlite3.SQLiteConn) {
	defer close(cp.done)
	defer c.Close()
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-cp.kick:
		case <-cp.stop:
			return
		}
		t.Reset(checkpointDelay)
		select {
		case <-t.C:
		case <-cp.stop:
			t.Stop()
			return
		}
		// Drop the signals of the commits this checkpoint will cover.
		select {
		case <-cp.kick:
		default:
		}
		// An error (another process holds the checkpoint lock, a full
		// disk) leaves the log to the next round and to the backstop.
		_, _ = c.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)", nil)
	}
}

// close stops the checkpointer and closes its connection; it returns once
// no checkpoint runs any more. Safe to call more than once.
func (cp *checkpointer) close() {
	cp.once.Do(func() { close(cp.stop) })
	<-cp.done
}
