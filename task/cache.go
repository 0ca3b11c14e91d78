package task

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"time"
)

// taskCache keeps the tasks that executions read, keyed by id, with the
// updated_at each was read under. Executing a task, and starting each of
// its executions that did not start with their submission, checks the
// stored updated_at with a one-column read and reuses the cached task while
// it is unchanged: a job runs the task as it is when it starts, without
// decoding the whole row every time. Every change of a task's content sets a new updated_at (in
// microseconds), on this node or any other; the manager also drops its own
// changes at once. The cache is safe for concurrent use; the tasks in it
// are shared and never modified.
type taskCache struct {
	mu      sync.Mutex
	entries map[string]cachedTask
}

type cachedTask struct {
	stamp time.Time
	t     *Task
}

// maxCachedTasks bounds the cache; past it the cache starts afresh.
const maxCachedTasks = 4096

func (c *taskCache) get(id string, stamp time.Time) *Task {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if !ok || !e.stamp.Equal(stamp) {
		return nil
	}
	return e.t
}

func (c *taskCache) put(id string, stamp time.Time, t *Task) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil || len(c.entries) >= maxCachedTasks {
		c.entries = map[string]cachedTask{}
	}
	c.entries[id] = cachedTask{stamp: stamp, t: t}
}

func (c *taskCache) drop(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, id)
}

func (c *taskCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = nil
}

// sqlQuerier is what both *sql.DB and *sql.Tx offer for a one-row read.
type sqlQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// current returns the task as stored now, or nil when there is none, with
// the updated_at it was read under. The result is shared: callers must not
// change it.
func (m *Manager) current(ctx context.Context, id string) (*Task, time.Time, error) {
	q, ok := m.db.Statement.ConnPool.(sqlQuerier)
	if !ok {
		t, err := m.find(ctx, id)
		if err != nil || t == nil {
			return t, time.Time{}, err
		}
		return t, t.UpdatedAt, nil
	}
	query := "SELECT updated_at FROM tasks WHERE id = ?"
	if m.db.Dialector.Name() == "postgres" {
		query = "SELECT updated_at FROM tasks WHERE id = $1"
	}
	var stamp time.Time
	m.stampReads.Add(1)
	if err := q.QueryRowContext(ctx, query, id).Scan(&stamp); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, time.Time{}, nil
		}
		return nil, time.Time{}, err
	}
	if t := m.cache.get(id, stamp); t != nil {
		return t, stamp, nil
	}
	t, err := m.find(ctx, id)
	if err != nil || t == nil {
		return t, time.Time{}, err
	}
	m.cache.put(id, stamp, t)
	return t, stamp, nil
}
