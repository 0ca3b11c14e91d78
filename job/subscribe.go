package job

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// subscriberBuffer holds more events than one job can produce between two
// reads (pending, running, a terminal state, deletion, with room for
// retried attempts), so a subscriber that reads promptly never misses one.
const subscriberBuffer = 16

type subscriber struct{ ch chan Event }

// subGroup is the subscribers of one job, with the last state they were
// sent: a change learned twice (from this node and from a notification or
// a poll) is sent once.
type subGroup struct {
	subs map[*subscriber]struct{}
	last string
}

// Subscribe returns the changes of job id from now on, wherever the job
// runs, and a function that ends the subscription. Changes made on this
// node arrive at once; those of other nodes through notifications
// (PostgreSQL) or within Config.PollInterval (SQLite shared by several
// processes). Events are sent without blocking the scheduler: a subscriber
// that stops reading loses events past the buffer.
func (s *Scheduler) Subscribe(id string) (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, subscriberBuffer)}
	s.mu.Lock()
	g := s.subs[id]
	if g == nil {
		g = &subGroup{subs: map[*subscriber]struct{}{}}
		s.subs[id] = g
	}
	g.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if g := s.subs[id]; g != nil {
			delete(g.subs, sub)
			if len(g.subs) == 0 {
				delete(s.subs, id)
			}
		}
	}
}

func stateKey(j *Job) string { return string(j.Status) + "/" + strconv.Itoa(j.Attempt) }

func (s *Scheduler) publish(id string, ev Event) {
	s.all.send(id, ev)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.running[id]; e != nil && (ev.Deleted || ev.Job.Status.Terminal()) {
		e.ended = true
	}
	g := s.subs[id]
	if g == nil {
		return
	}
	key := "deleted"
	if !ev.Deleted {
		key = stateKey(ev.Job)
	}
	if key == g.last {
		return
	}
	g.last = key
	for sub := range g.subs {
		select {
		case sub.ch <- ev:
		default:
		}
	}
}

// subscribedElsewhere returns the ids with subscribers whose jobs do not
// run on this node: their changes must be learned from the database.
func (s *Scheduler) subscribedElsewhere() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.subs {
		if s.running[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *Scheduler) hasSubscribers(id string) bool {
	if s.all.active() {
		return true // every change is of interest to someone
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[id] != nil
}

// changed publishes a stored transition to subscribers and the observer.
func (s *Scheduler) changed(j *Job, from Status) {
	s.publish(j.ID, Event{Job: j})
	if s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j, from)
	}
}

// ChangeBuffer is how many changes a [Changes] subscription holds for its
// reader; past it, changes are dropped and counted (see [Changes.Lost]).
const ChangeBuffer = 256

// Change is one state change of some job: its new record, or its deletion.
type Change struct {
	ID      string
	Job     *Job // nil when Deleted; shared, must not be modified
	Deleted bool
}

// Changes is a subscription to the state changes of every job, wherever
// it runs; see [Scheduler.SubscribeAll]. Its methods are safe for
// concurrent use.
type Changes struct {
	ch     chan Change
	lostCh chan struct{}
	lost   atomic.Int64
}

// C delivers the changes in the order this node learned them.
func (c *Changes) C() <-chan Change { return c.ch }

// LostC is signalled (capacity 1) when changes were dropped because the
// reader fell more than [ChangeBuffer] behind.
func (c *Changes) LostC() <-chan struct{} { return c.lostCh }

// Lost returns how many changes were dropped since the last call, and
// resets the count. A reader that sees a count above zero should read the
// jobs it shows again.
func (c *Changes) Lost() int64 { return c.lost.Swap(0) }

// fanout holds the service-wide subscriptions. The zero value is ready.
type fanout struct {
	mu   sync.Mutex
	subs map[*Changes]struct{}
	// last is the last state sent per job, so a change learned twice (by
	// two notifications that both read the same row) is sent once. It is
	// bounded: past lastCap entries it starts afresh.
	last map[string]stateOrder
	n    atomic.Int32 // len(subs), read without the lock
}

const lastCap = 4096

// SubscribeAll returns every job state change from now on (submission,
// start, end, cancellation, deletion), of this node's jobs at once and of
// other nodes' through notifications (PostgreSQL), and a function that
// ends the subscription. On SQLite shared by several processes, only this
// process's changes are seen. Memory per subscription is bounded: a reader
// that falls [ChangeBuffer] changes behind loses the next ones and is told
// how many through [Changes.LostC] and [Changes.Lost]; the scheduler never
// waits for a reader.
func (s *Scheduler) SubscribeAll() (*Changes, func()) {
	c := &Changes{ch: make(chan Change, ChangeBuffer), lostCh: make(chan struct{}, 1)}
	f := &s.all
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[*Changes]struct{}{}
	}
	f.subs[c] = struct{}{}
	f.n.Store(int32(len(f.subs)))
	f.mu.Unlock()
	return c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, c)
		f.n.Store(int32(len(f.subs)))
		if len(f.subs) == 0 {
			f.last = nil
		}
	}
}

// stateOrder orders the states of one job: later attempts after earlier
// ones, and within an attempt waiting, running, finished; deletion last.
type stateOrder struct {
	attempt int
	rank    int
	deleted bool
}

func (a stateOrder) before(b stateOrder) bool {
	switch {
	case a.deleted:
		return false
	case b.deleted:
		return true
	case a.attempt != b.attempt:
		return a.attempt < b.attempt
	}
	return a.rank < b.rank
}

func rankOf(st Status) int {
	switch {
	case st == StatusScheduled:
		return 0
	case st == StatusPending:
		return 1
	case st == StatusRunning:
		return 2
	}
	return 3 // finished
}

func (f *fanout) active() bool { return f.n.Load() > 0 }

func (f *fanout) send(id string, ev Event) {
	if !f.active() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	key := stateOrder{deleted: true}
	if !ev.Deleted {
		key = stateOrder{attempt: ev.Job.Attempt, rank: rankOf(ev.Job.Status)}
	}
	if last, ok := f.last[id]; ok && !last.before(key) {
		// Sent already, or older than what was sent: the start of a short
		// job can be published after its end, and readers must not see a
		// finished job run again.
		return
	}
	if f.last == nil || len(f.last) >= lastCap {
		f.last = map[string]stateOrder{}
	}
	f.last[id] = key
	ch := Change{ID: id, Job: ev.Job, Deleted: ev.Deleted}
	for c := range f.subs {
		select {
		case c.ch <- ch:
		default:
			c.lost.Add(1)
			select {
			case c.lostCh <- struct{}{}:
			default:
			}
		}
	}
}

// insertedWindow is how far back a node looks for jobs another node has
// just submitted: the notification of an insert names no job (a batch may
// hold thousands), so the new pending rows are read by submission time.
// It also absorbs clock differences between nodes.
const insertedWindow = 10 * time.Second

// refreshInserted sends service-wide subscribers the jobs other nodes
// submitted recently, in their current state; the last-state check drops
// those already sent.
func (s *Scheduler) refreshInserted(ctx context.Context) {
	if !s.all.active() {
		return
	}
	var jobs []Job
	err := s.db.WithContext(ctx).Where("status <> ? AND submitted_at >= ?", StatusScheduled, time.Now().Add(-insertedWindow).UTC()).
		Order("submitted_at DESC").Limit(ChangeBuffer).Find(&jobs).Error
	if err != nil {
		s.log.Warn("read jobs submitted by other nodes", "error", err)
		return
	}
	for i := len(jobs) - 1; i >= 0; i-- {
		s.all.send(jobs[i].ID, Event{Job: &jobs[i]})
	}
}
