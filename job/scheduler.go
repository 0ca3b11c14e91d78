package job

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/reqid"
	"github.com/chapkit-go/chapkit/internal/tracing"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

type state int

const (
	stateNew state = iota
	stateStarted
	stateDraining
	stateStopped
)

type runEntry struct {
	job    *Job
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	// released: the entry no longer holds a slot (s.mu). abandoned: it was
	// released while its call still ran. fenced: the fence stopped it, so
	// it is recorded when the fence lifts.
	released, abandoned, fenced bool
	watched                     bool // an abandon watcher runs (s.mu)
	// ended is set (s.mu) when a terminal state or the deletion of the
	// job was published: from then on a waiter must read the job.
	ended bool
	// detached is set by Run.Detach: a call still running after the
	// handler returned.
	detached <-chan struct{}
}

// Event is one change of a job seen by a subscriber: the new record, or
// Deleted when the job was removed.
type Event struct {
	Job     *Job
	Deleted bool
}

// Scheduler runs jobs stored in the database. Several schedulers (nodes),
// in one process or many, may share a database: each claims pending jobs
// for itself, and no job is ever run by two of them. It is safe for
// concurrent use. Start it once; after Stop it cannot be started again.
type Scheduler struct {
	db *gorm.DB
	// d holds the engine's statements, and dErr why there are none (an
	// engine we do not support); both are set by New and never change.
	d        dialect
	dErr     error
	cfg      Config
	log      *slog.Logger
	handlers map[string]Handler
	kinds    []string // the handlers' kinds, sorted; set by Start
	// tracer starts the execution spans; nil when tracing is off.
	tracer trace.Tracer
	node   Node // this node; ID is set by New

	mu        sync.Mutex
	st        state
	maxConc   int
	running   map[string]*runEntry // jobs holding a slot
	abandoned map[string]*runEntry // released calls that have not returned
	subs      map[string]*subGroup
	all       fanout // service-wide subscriptions (subscribe.go)
	// pendingEst estimates the pending rows of the database: counted at
	// every heartbeat, plus this node's submissions, minus its claims.
	pendingEst int
	reserved   int // submissions between the bound check and the insert
	// starting counts the slots taken by submissions stored running on
	// this node, between the decision and the insert.
	starting int
	// early serialises the submissions made before Start, and Start's
	// switch to started against them: each such submission counts the
	// pending jobs and inserts its own with no other in between, and
	// Start counts the pending jobs either before one or after it.
	early  sync.Mutex
	fenced bool
	wg     sync.WaitGroup // workers holding a slot
	loops  sync.WaitGroup // background loops and abandon watchers
	// runCtx is the lifetime context of the started scheduler: every job
	// context derives from it, never from a request, because $execute
	// answers before its job runs. loopCtx ends the background loops.
	runCtx     context.Context
	runCancel  context.CancelCauseFunc
	loopCtx    context.Context
	loopCancel context.CancelFunc
	wake       chan struct{}
	// pokes counts the wake-ups that may bring pending work (every poke
	// but a released slot's); drained holds its value when a claim that
	// began after it found fewer jobs than it asked for. While the two are
	// equal, nothing is known to wait, so a released slot claims nothing
	// and the next claim waits for a poke or the poll interval: on SQLite
	// even an empty claim takes the write lock.
	pokes   atomic.Uint64
	drained atomic.Uint64

	leader atomic.Bool
	// born is a monotonic reference; beatSent is when (since born) the
	// last heartbeat that was written had been sent, for the watchdog.
	born           time.Time
	beatSent       atomic.Int64
	watchers       sync.WaitGroup // abandon watchers; Add only under mu while loopsOn
	loopsOn        bool
	stopped        chan struct{} // closed when Stop has finished
	abandonedTotal atomic.Int64

	// writes feeds the batching writer (writer.go) while writerOn;
	// writeMu keeps a send from racing the writer's stop.
	writes     chan *writeOp
	writeMu    sync.RWMutex
	writerOn   bool
	writerStop chan struct{}
	writerDone chan struct{}
}

// New returns a scheduler storing its jobs in db (SQLite or PostgreSQL).
// Register handlers with Handle, then call Start; jobs may be submitted
// once their handler is registered, before Start. An unsupported engine
// is reported by Start and by Submit.
func New(db *gorm.DB, cfg Config) *Scheduler {
	cfg = cfg.withDefaults()
	var tracer trace.Tracer
	if cfg.TracerProvider != nil {
		tracer = cfg.TracerProvider.Tracer(tracing.Scope)
	}
	d, dErr := dialectOf(db)
	return &Scheduler{
		tracer:     tracer,
		db:         db,
		d:          d,
		dErr:       dErr,
		cfg:        cfg,
		log:        cfg.Logger,
		handlers:   map[string]Handler{},
		node:       newNode(cfg),
		born:       time.Now(),
		maxConc:    cfg.MaxConcurrency,
		running:    map[string]*runEntry{},
		abandoned:  map[string]*runEntry{},
		subs:       map[string]*subGroup{},
		wake:       make(chan struct{}, 1),
		writes:     make(chan *writeOp, maxBatch),
		writerStop: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

func newNode(cfg Config) Node {
	start, _ := procStart(os.Getpid())
	return Node{ID: cmp.Or(cfg.NodeID, wire.NewID()), Hostname: hostname(), PID: os.Getpid(), HostKey: hostKey(),
		ProcStart: start, RescueAfterMS: cfg.RescueAfter.Milliseconds()}
}

// freshMS is the heartbeat age, in ms, past which this node stops taking
// and running work: three quarters of its rescue horizon, so that it has
// stopped before any other node may rescue its jobs.
func (s *Scheduler) freshMS() int64 { return (s.cfg.RescueAfter * 3 / 4).Milliseconds() }

// Migrate creates or updates the tables of jobs, nodes, leases and schedule
// marks.
func Migrate(ctx context.Context, db *gorm.DB) error {
	if err := db.WithContext(ctx).AutoMigrate(&Job{}, &Node{}, &Lease{}, &Mark{}); err != nil {
		return err
	}
	return db.WithContext(ctx).Exec("INSERT INTO chapkit_leases (name, holder, expires_ms) VALUES (?, '', 0) ON CONFLICT (name) DO NOTHING", leaderLease).Error
}

// Handle registers the handler of a job kind. Kinds are stable names stored
// with each job, so a job queued before a restart finds its handler again.
// Handle must be called before Start.
func (s *Scheduler) Handle(kind string, h Handler) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st != stateNew {
		return fmt.Errorf("job: handler %q registered after Start", kind)
	}
	if _, dup := s.handlers[kind]; dup {
		return fmt.Errorf("job: handler %q already registered", kind)
	}
	s.handlers[kind] = h
	return nil
}

// NodeID returns the id of this node, as recorded in the "node" member of
// the jobs it runs.
func (s *Scheduler) NodeID() string { return s.node.ID }

// IsLeader reports whether this node holds the leader lease now: the one
// node that rescues dead nodes and runs maintenance such as retention.
func (s *Scheduler) IsLeader() bool { return s.leader.Load() }

// RetriesEnabled reports whether interrupted jobs are retried, which is
// when job records show their attempt.
func (s *Scheduler) RetriesEnabled() bool { return s.cfg.RetryInterrupted > 1 }

// MaxConcurrency returns the current limit; 0 means unlimited.
func (s *Scheduler) MaxConcurrency() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConc
}

// SetMaxConcurrency replaces this node's limit at run time; 0 or less
// means unlimited.
func (s *Scheduler) SetMaxConcurrency(n int) {
	s.mu.Lock()
	s.maxConc = max(n, 0)
	s.mu.Unlock()
	s.poke()
}

// Counts returns how many jobs wait for a slot (in the whole database, as
// estimated between heartbeats) and how many run on this node.
func (s *Scheduler) Counts() (pending, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.pendingEst, 0), len(s.running)
}

// Abandoned returns how many calls were given up on (they ignored their
// context past Config.AbandonAfter) and have not returned yet, and how many
// were given up on since Start.
func (s *Scheduler) Abandoned() (now int, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.abandoned), s.abandonedTotal.Load()
}

// Start registers this node, recovers what dead nodes left (jobs of a
// previous process on this host at once; others when their heartbeat is
// older than Config.RescueAfter) and starts claiming jobs.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.st != stateNew {
		s.mu.Unlock()
		return errors.New("job: scheduler already started or stopped")
	}
	s.mu.Unlock()
	if s.dErr != nil {
		return s.dErr
	}
	s.mu.Lock()
	s.kinds = slices.Sorted(maps.Keys(s.handlers))
	s.mu.Unlock()
	if len(s.kinds) == 0 {
		// A node without handlers claims nothing; IN () is not valid SQL.
		s.kinds = []string{""}
	}
	if err := s.register(ctx); err != nil {
		return fmt.Errorf("job: register node: %w", err)
	}
	rescued, err := s.recover(ctx)
	if err != nil {
		s.deregister()
		return fmt.Errorf("job: recover jobs: %w", err)
	}
	// Submissions made before Start wait from here on, and then take the
	// started path: the count below sees every job stored before it, and
	// every later one is counted by its own submission.
	s.early.Lock()
	defer s.early.Unlock()
	pending, err := s.countPending(ctx)
	if err != nil {
		s.deregister()
		return fmt.Errorf("job: count pending jobs: %w", err)
	}
	if rescued+pending > 0 {
		s.log.Info("recovered jobs", "interrupted", rescued, "pending", pending)
	}
	mechanism := "polling every " + s.cfg.PollInterval.String()
	if s.cfg.Listener != nil {
		mechanism = "notifications, polling every " + s.cfg.PollInterval.String() + " as a fallback"
	}
	s.log.Info("job node started", "node", s.node.ID, "hostname", s.node.Hostname, "pid", s.node.PID,
		"engine", s.d.name, "signals", mechanism, "leader", s.leader.Load())

	s.mu.Lock()
	if s.st != stateNew {
		// Stopped while starting: nothing runs yet.
		s.mu.Unlock()
		s.deregister()
		return errors.New("job: scheduler stopped during Start")
	}
	defer s.mu.Unlock()
	s.pendingEst = pending
	s.writeMu.Lock()
	s.writerOn = true
	s.writeMu.Unlock()
	go s.runWriter(s.writerStop)
	s.runCtx, s.runCancel = context.WithCancelCause(context.Background())
	s.loopCtx, s.loopCancel = context.WithCancel(context.Background())
	s.st = stateStarted
	s.loopsOn = true
	s.loops.Add(4)
	go s.fetchLoop()
	go s.heartbeatLoop()
	go s.watchdogLoop()
	go s.maintenanceLoop()
	if s.cfg.Listener != nil {
		s.loops.Add(1)
		go func() {
			defer s.loops.Done()
			s.cfg.Listener.Listen(s.loopCtx, notifyChannel, s.poke, s.onNotification)
		}()
	}
	s.poke()
	return nil
}

// poke wakes the fetch loop without blocking, to claim what may be
// pending.
func (s *Scheduler) poke() {
	s.pokes.Add(1)
	s.wakeLoop()
}

// wakeLoop wakes the fetch loop without blocking.
func (s *Scheduler) wakeLoop() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Submit stores a new job of the given kind, with args encoded as JSON,
// wakes a node to run it and returns its id. When this node has a free
// slot and no job waits, the job is stored already running here and
// starts at once, without a claim. It never blocks on the concurrency
// limit.
//
// Submit works before Start too, once the kind's handler is registered:
// the job is then stored pending (no slot runs yet), for Start, or any
// other node sharing the database, to run in submission order. It returns
// ErrDraining once Stop was called (also a Stop before Start), ErrQueueFull
// when Config.MaxPending jobs are pending already, and an error for a kind
// without handler. It is safe for concurrent use, also with Start.
func (s *Scheduler) Submit(ctx context.Context, kind string, args any) (string, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("job: encode arguments of %s job: %w", kind, err)
	}
	ids, err := s.submit(ctx, "job.Scheduler.Submit", kind, []json.RawMessage{raw})
	if err != nil {
		return "", err
	}
	return ids[0], nil
}

// SubmitMany stores one job of the given kind per element of args, all in
// one transaction, and returns their ids in the order of args. Either
// every job is stored or none is. Like Submit it starts at once as many
// of them as this node has free slots for (when no job waits), never
// blocks on the concurrency limit, works before Start (storing every job
// pending, run in the order of args once started), and returns
// ErrDraining once Stop was called; it returns ErrQueueFull when the jobs
// would take the pending jobs past Config.MaxPending. It is safe for
// concurrent use. An empty args stores nothing and returns no ids.
func (s *Scheduler) SubmitMany(ctx context.Context, kind string, args []any) ([]string, error) {
	raws := make([]json.RawMessage, len(args))
	for i, a := range args {
		raw, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("job: encode arguments %d of %s job: %w", i, kind, err)
		}
		raws[i] = raw
	}
	if len(raws) == 0 {
		return []string{}, nil
	}
	return s.submit(ctx, "job.Scheduler.SubmitMany", kind, raws)
}

// submit stores one job per element of raws with one write of the
// writer's, the first of them running on this node when it has free slots
// and no job waits. Before Start it stores them all pending instead
// (submitEarly).
func (s *Scheduler) submit(ctx context.Context, op, kind string, raws []json.RawMessage) ([]string, error) {
	n := len(raws)
	s.mu.Lock()
	if s.st == stateNew {
		s.mu.Unlock()
		if ids, done, err := s.submitEarly(ctx, op, kind, raws); done {
			return ids, err
		}
		s.mu.Lock() // Start finished meanwhile
	}
	switch {
	case s.st != stateStarted:
		s.mu.Unlock()
		return nil, ErrDraining
	case s.handlers[kind] == nil:
		s.mu.Unlock()
		return nil, fmt.Errorf("job: no handler for kind %q", kind)
	}
	full := s.pendingEst+s.reserved+n > s.cfg.MaxPending
	s.mu.Unlock()
	if full {
		// The estimate says full: count exactly before refusing, since
		// other nodes may have claimed jobs since the last count.
		count, err := s.countPending(ctx)
		if err != nil {
			return nil, problem.Database(op, err)
		}
		s.mu.Lock()
		s.pendingEst = count
		full = count+s.reserved+n > s.cfg.MaxPending
		s.mu.Unlock()
		if full {
			return nil, ErrQueueFull
		}
	}

	jobs := s.newJobs(ctx, kind, raws)
	now := jobs[0].SubmittedAt
	// Take free slots for the first jobs when nothing waits for them
	// (older jobs go first): those are stored running on this node and
	// start without a claim, saving a write and a wake-up each. The slots
	// are held from here (s.starting, s.wg) so that no claim takes them.
	s.mu.Lock()
	direct := 0
	if s.pendingEst+s.reserved <= 0 {
		direct = min(s.freeSlotsLocked(), n) // 0 once Stop began
	}
	s.reserved += n - direct
	s.starting += direct
	s.wg.Add(direct)
	s.mu.Unlock()
	for _, j := range jobs[:direct] {
		j.Status, j.StartedAt, j.Node = StatusRunning, &now, &s.node.ID
	}

	res := s.write(&writeOp{kind: opInsert, jobs: jobs})
	err := res.err
	started := jobs[:0:0]
	if err == nil {
		started = jobs[:res.started]
	}
	var back []*Job // stored running here, but this node stopped meanwhile
	s.mu.Lock()
	s.reserved -= n - direct
	s.starting -= direct
	if err == nil {
		s.pendingEst += n - len(started)
	}
	if len(started) > 0 && (s.st != stateStarted || s.fenced) {
		back, started = started, nil
	}
	entries := make([]*runEntry, 0, len(started))
	for _, j := range started {
		entries = append(entries, s.enter(j))
	}
	release := direct - len(started)
	s.mu.Unlock()
	if len(back) > 0 {
		s.unclaim(back)
		s.mu.Lock()
		s.pendingEst += len(back)
		s.mu.Unlock()
	}
	if err != nil && direct > 0 && !errors.Is(err, errWriterStopped) {
		// The commit may have landed although it reported an error (a
		// connection lost during COMMIT): a row left running here with
		// no handler would never end, so give such rows back.
		s.unclaim(jobs[:direct])
	}
	// The slots are released only after the jobs went back, so that a
	// Stop waiting for them cannot return (and the database close)
	// before they are pending again.
	s.wg.Add(-release)
	if errors.Is(err, errWriterStopped) {
		return nil, ErrDraining
	}
	if err != nil {
		return nil, problem.Database(op, err)
	}
	if len(started) < n {
		s.poke()
	}
	ids := make([]string, n)
	tell := s.cfg.Observer != nil || s.all.active()
	for i, j := range jobs {
		ids[i] = j.ID
		if tell {
			// Tell of the submission as a pending job, then of its start,
			// as if it had been claimed.
			pending := j.clone()
			pending.Status, pending.StartedAt, pending.Node = StatusPending, nil, nil
			s.changed(pending, "")
		}
		if i < len(started) {
			s.changed(j.clone(), StatusPending)
		}
	}
	s.launch(entries)
	return ids, nil
}

// newJobs returns one pending job of kind per element of raws, submitted
// now through the API, their ids in the order of raws.
func (s *Scheduler) newJobs(ctx context.Context, kind string, raws []json.RawMessage) []*Job {
	trigger := TriggerAPI
	now := wire.Now()
	// The job's log lines and its execution span name the request that
	// submitted it (docs/tracing.md).
	var requestID, traceParent *string
	if id := reqid.From(ctx); id != "" {
		requestID = &id
	}
	if s.tracer != nil {
		if tp := tracing.TraceParent(ctx); tp != "" {
			traceParent = &tp
		}
	}
	jobs := make([]*Job, len(raws))
	for i, raw := range raws {
		jobs[i] = &Job{ID: wire.NewID(), Kind: kind, Args: raw, Status: StatusPending, SubmittedAt: now, Attempt: 1, Trigger: &trigger,
			RequestID: requestID, TraceParent: traceParent}
	}
	return jobs
}

// submitEarly stores jobs submitted before Start: all pending, in one
// transaction of their own (there is no writer yet), after an exact count
// of the pending jobs against Config.MaxPending. done is false when the
// scheduler is no longer new once submissions before Start are its turn:
// Start finished, and the caller takes the started path.
func (s *Scheduler) submitEarly(ctx context.Context, op, kind string, raws []json.RawMessage) (ids []string, done bool, err error) {
	s.early.Lock()
	defer s.early.Unlock()
	s.mu.Lock()
	st, h := s.st, s.handlers[kind]
	s.mu.Unlock()
	switch {
	case st != stateNew:
		return nil, false, nil
	case s.dErr != nil:
		return nil, true, s.dErr
	case h == nil:
		return nil, true, fmt.Errorf("job: no handler for kind %q", kind)
	}
	// No estimate is kept before Start, and these submissions are one at
	// a time: count every time.
	count, err := s.countPending(ctx)
	if err != nil {
		return nil, true, problem.Database(op, err)
	}
	if count+len(raws) > s.cfg.MaxPending {
		return nil, true, ErrQueueFull
	}
	jobs := s.newJobs(ctx, kind, raws)
	// A transaction on both engines: past maxInsertRows the insert is
	// several statements, and the jobs are stored all or none. Started
	// nodes sharing the database are woken to run them.
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := s.insertJobs(ctx, poolOf(tx), jobs); err != nil {
			return err
		}
		return s.notifyTx(tx, opInserted, "")
	})
	if err != nil {
		return nil, true, problem.Database(op, err)
	}
	ids = make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
		s.changed(j.clone(), "")
	}
	return ids, true, nil
}

// enter registers j as running on this node and returns its entry; the
// caller holds s.mu and has counted it in s.wg. The job's context carries
// the id of the request that submitted it, so its log lines name it.
func (s *Scheduler) enter(j *Job) *runEntry {
	base := s.runCtx
	if j.RequestID != nil {
		base = reqid.With(base, *j.RequestID)
	}
	jctx, cancel := context.WithCancelCause(base)
	e := &runEntry{job: j, ctx: jctx, cancel: cancel, done: make(chan struct{})}
	s.running[j.ID] = e
	return e
}

// launch starts the handlers of entries. It is called only after their
// start was published, so that no subscriber hears of a job's end before
// its start. A cancel arriving meanwhile finds the entry and cancels its
// context; the handler then starts already cancelled.
func (s *Scheduler) launch(entries []*runEntry) {
	for _, e := range entries {
		go s.work(e)
	}
}

// claimBatch bounds how many jobs one claim takes, so one node does not
// take a whole backlog while others are idle.
const claimBatch = 64

// fetchLoop claims jobs while slots are free. It wakes on a submission, a
// finished job, a notification from another node, or the poll interval.
func (s *Scheduler) fetchLoop() {
	defer s.loops.Done()
	tick := time.NewTicker(s.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.loopCtx.Done():
			return
		case <-s.wake:
		case <-tick.C:
			s.poll(s.loopCtx)
			s.pokes.Add(1) // other processes may have stored jobs
		}
		s.fill(s.loopCtx)
	}
}

// freeSlots returns how many more jobs this node may run now.
func (s *Scheduler) freeSlotsLocked() int {
	if s.st != stateStarted || s.fenced {
		return 0
	}
	if s.maxConc <= 0 {
		return claimBatch
	}
	return max(s.maxConc-len(s.running)-s.starting, 0)
}

// fill claims and starts jobs until the slots are full or none is pending.
func (s *Scheduler) fill(ctx context.Context) {
	for ctx.Err() == nil {
		s.mu.Lock()
		n := min(s.freeSlotsLocked(), claimBatch)
		s.mu.Unlock()
		if n == 0 {
			return
		}
		gen := s.pokes.Load()
		if s.drained.Load() == gen {
			return // the last claim found the queue empty, and nothing came since
		}
		jobs, err := s.claim(ctx, n)
		if err == nil && len(jobs) < n {
			s.drained.Store(gen)
		}
		if err != nil || len(jobs) == 0 {
			if err != nil && ctx.Err() == nil {
				s.log.Warn("claim jobs", "error", err)
			}
			return
		}
		s.mu.Lock()
		if s.st != stateStarted || s.fenced {
			s.mu.Unlock()
			// Stopping meanwhile: give the jobs back for another node.
			s.unclaim(jobs)
			return
		}
		// A Submit may have started its job directly in a slot this
		// claim counted on (the claim runs without the lock, so as not
		// to hold up submissions): give back what no longer fits, the
		// newest first, rather than run more than MaxConcurrency.
		var extra []*Job
		if free := s.freeSlotsLocked(); len(jobs) > free {
			jobs, extra = jobs[:free], jobs[free:]
		}
		// Not clamped: a claim can count a job before the Submit that
		// stored it does, and the two must cancel out.
		s.pendingEst -= len(jobs)
		var again []*Job
		entries := make([]*runEntry, 0, len(jobs))
		for _, j := range jobs {
			if s.running[j.ID] != nil {
				// An earlier attempt of this job still winds down here:
				// give the new one back rather than run both.
				again = append(again, j)
				continue
			}
			s.wg.Add(1)
			entries = append(entries, s.enter(j))
		}
		s.mu.Unlock()
		if len(again) > 0 {
			s.unclaim(again)
		}
		if len(extra) > 0 {
			s.unclaim(extra) // still counted in pendingEst
		}
		for _, j := range jobs {
			if !slices.Contains(again, j) {
				s.changed(j.clone(), StatusPending)
			}
		}
		s.launch(entries)
		if len(jobs) < n {
			return
		}
	}
}

// claim marks up to n pending jobs, oldest first, running on this node.
func (s *Scheduler) claim(ctx context.Context, n int) ([]*Job, error) {
	now := wire.Now()
	var jobs []*Job
	// On PostgreSQL the claim statement tells the other nodes itself, so
	// subscribers everywhere see the job start.
	args := map[string]any{"started": now, "node": s.node.ID, "limit": n, "kinds": s.kinds, "fresh": s.freshMS()}
	if err := s.db.WithContext(ctx).Raw(s.d.claim, args).Scan(&jobs).Error; err != nil {
		return nil, err
	}
	for _, j := range jobs {
		j.Status, j.StartedAt, j.Node = StatusRunning, &now, &s.node.ID
	}
	slices.SortFunc(jobs, func(a, b *Job) int {
		if c := a.SubmittedAt.Compare(b.SubmittedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return jobs, nil
}

// unclaim puts jobs this node claimed but will not run back to pending.
func (s *Scheduler) unclaim(jobs []*Job) {
	ids := make([]string, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	err := s.db.WithContext(context.Background()).Model(&Job{}).
		Where("id IN ? AND status = ? AND node = ?", ids, StatusRunning, s.node.ID).
		Updates(map[string]any{"status": StatusPending, "started_at": nil, "node": nil}).Error
	if err != nil {
		s.log.Error("return claimed jobs", "count", len(ids), "error", err)
	}
	// The ids let other nodes' subscribers see the jobs pending again.
	s.notify(context.Background(), opInserted, ids...)
	s.pokes.Add(1) // pending again: the next free slot claims them
}

func (s *Scheduler) work(e *runEntry) {
	defer func() {
		e.cancel(nil)
		s.mu.Lock()
		s.releaseLocked(e)
		if e.abandoned {
			delete(s.abandoned, e.job.ID)
			s.log.WarnContext(e.ctx, "abandoned call returned", "job_id", e.job.ID, "kind", e.job.Kind)
		}
		close(e.done)
		s.mu.Unlock()
	}()
	if e.ctx.Err() != nil {
		return // cancelled before it started: the canceller stored the outcome
	}
	j := e.job.clone()
	ctx, span := s.startSpan(e.ctx, j)
	s.log.DebugContext(ctx, "job started", "job_id", j.ID, "kind", j.Kind)
	result, err, stack := s.call(ctx, e, j)
	switch {
	case e.ctx.Err() != nil && isOurCause(context.Cause(e.ctx)):
		// Cancel, Delete, Stop or a rescue stored the outcome already.
		err = context.Cause(e.ctx)
	case err != nil:
		s.fail(ctx, j, StatusRunning, err, stack)
	default:
		s.complete(ctx, j, result)
	}
	if span != nil {
		if err != nil {
			tracing.Fail(span, err)
		}
		span.End()
	}
	if e.detached != nil {
		s.linger(e, e.detached)
	}
}

// releaseLocked frees e's slot once. s.mu is held.
func (s *Scheduler) releaseLocked(e *runEntry) {
	if e.released {
		return
	}
	e.released = true
	if s.running[e.job.ID] == e {
		delete(s.running, e.job.ID)
	}
	s.wg.Done()
	if s.drained.Load() != s.pokes.Load() {
		s.wakeLoop() // a slot came free for what may be pending
	}
}

// linger keeps e's slot while a call it gave up on still runs, for at most
// Config.AbandonAfter; then the slot is released and the call abandoned.
func (s *Scheduler) linger(e *runEntry, done <-chan struct{}) {
	t := time.NewTimer(s.cfg.AbandonAfter)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	s.abandon(e)
	<-done
}

// watchCancelled abandons a cancelled job whose call has not returned
// within Config.AbandonAfter.
func (s *Scheduler) watchCancelled(e *runEntry) {
	s.mu.Lock()
	if !s.loopsOn || e.watched {
		s.mu.Unlock()
		return
	}
	e.watched = true
	s.watchers.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.watchers.Done()
		t := time.NewTimer(s.cfg.AbandonAfter)
		defer t.Stop()
		select {
		case <-e.done:
		case <-t.C:
			s.abandon(e)
		case <-s.loopCtx.Done():
		}
	}()
}

func (s *Scheduler) abandon(e *runEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.released {
		return
	}
	select {
	case <-e.done:
		return
	default:
	}
	s.releaseLocked(e)
	e.abandoned = true
	s.abandoned[e.job.ID] = e
	s.abandonedTotal.Add(1)
	s.log.WarnContext(e.ctx, "call ignored its cancellation; slot released and call abandoned",
		"job_id", e.job.ID, "kind", e.job.Kind, "after", s.cfg.AbandonAfter)
}

func isOurCause(err error) bool {
	return errors.Is(err, ErrCanceled) || errors.Is(err, ErrDeleted) || errors.Is(err, ErrShutdown) || errors.Is(err, ErrRescued)
}

// call runs the handler, turning a panic into an error with the stack of
// the panicking code.
func (s *Scheduler) call(ctx context.Context, e *runEntry, j *Job) (result any, err error, stack []byte) {
	defer func() {
		if r := recover(); r != nil {
			stack = debug.Stack()
			err = &panicError{value: r}
			s.log.ErrorContext(ctx, "job handler panicked", "job_id", j.ID, "kind", j.Kind, "panic", r, "stack", string(stack))
		}
	}()
	h := s.handlers[j.Kind]
	if h == nil {
		return nil, fmt.Errorf("no handler for job kind %q", j.Kind), nil
	}
	result, err = h(ctx, &Run{Job: j.clone(), s: s, e: e})
	return result, err, nil
}

type panicError struct{ value any }

func (p *panicError) Error() string     { return fmt.Sprint(p.value) }
func (p *panicError) ErrorType() string { return "panic" }

// complete stores the result and the completion in one transaction (a
// batch of the writer's).
func (s *Scheduler) complete(ctx context.Context, j *Job, result any) {
	finished := wire.Now()
	res := s.write(&writeOp{kind: opComplete, job: j, at: finished, result: result})
	// A busy or briefly unreachable database must not turn a job that
	// succeeded into a failed one: retry the completion a few times.
	for wait := 100 * time.Millisecond; res.err != nil && problem.Temporary(res.err) && wait <= 3200*time.Millisecond; wait *= 2 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.runCtx.Done():
			t.Stop()
			return
		}
		res = s.write(&writeOp{kind: opComplete, job: j, at: finished, result: result})
	}
	switch {
	case errors.Is(res.err, errWriterStopped):
		return // stopped meanwhile: Stop recorded the job as interrupted
	case res.err != nil:
		s.fail(ctx, j, StatusRunning, fmt.Errorf("store result: %w", res.err), nil)
		return
	case !res.applied:
		return // cancelled, deleted or rescued while finishing: nothing stored
	}
	j.Status, j.FinishedAt, j.ArtifactID = StatusCompleted, &finished, res.artifactID
	s.changed(j.clone(), StatusRunning)
	s.log.InfoContext(ctx, "job completed", "job_id", j.ID, "kind", j.Kind, "duration_ms", finished.Sub(*j.StartedAt).Milliseconds())
}

// errorType names an error for the job record: the type the error declares
// (ErrorType() string), else plain "Error", so Go's internal type names
// never reach a client.
func errorType(err error) string {
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		if t := typed.ErrorType(); t != "" {
			return t
		}
	}
	return "Error"
}

// fail stores a failed outcome: error = "<Type>: <message>", and the
// traceback of the failing code where there is one (a panic's stack),
// otherwise the error line alone.
func (s *Scheduler) fail(ctx context.Context, j *Job, from Status, cause error, stack []byte) {
	finished := wire.Now()
	line := errorType(cause) + ": " + cause.Error()
	trace := line
	if len(stack) > 0 {
		trace = line + "\n\n" + string(stack)
	}
	applied, err := s.update(s.runCtx, j.ID, j.Attempt, from, map[string]any{"status": StatusFailed, "finished_at": finished, "error": line, "error_traceback": trace})
	if err != nil {
		s.log.ErrorContext(ctx, "store job failure", "job_id", j.ID, "error", err, "job_error", line)
		return
	}
	if !applied {
		return
	}
	j.Status, j.FinishedAt, j.Error, j.ErrorTraceback = StatusFailed, &finished, &line, &trace
	s.changed(j.clone(), from)
	s.log.InfoContext(ctx, "job failed", "job_id", j.ID, "kind", j.Kind, "error", line)
}

// update applies values to job id if it is still the same attempt in
// status from (and, when running, still on this node), telling the other
// nodes. It reports
// whether the row changed.
func (s *Scheduler) update(ctx context.Context, id string, attempt int, from Status, values map[string]any) (bool, error) {
	var applied bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		q := tx.Model(&Job{}).Where("id = ? AND status = ? AND attempt = ?", id, from, attempt)
		if from == StatusRunning {
			q = q.Where("node = ?", s.node.ID)
		}
		res := q.Updates(values)
		applied = res.RowsAffected == 1
		if res.Error != nil || !applied {
			return res.Error
		}
		return s.notifyTx(tx, opChanged, id)
	})
	return applied, err
}

// Get returns a copy of the job, or ErrNotFound.
func (s *Scheduler) Get(ctx context.Context, id string) (*Job, error) {
	if !wire.ValidID(id) {
		return nil, ErrNotFound
	}
	var j Job
	err := s.db.WithContext(ctx).Where("id = ?", id).Limit(1).Find(&j).Error
	if err != nil {
		return nil, problem.Database("job.Scheduler.Get", err)
	}
	if j.ID == "" {
		return nil, ErrNotFound
	}
	return &j, nil
}

// List returns the jobs, newest submission first (ties: id descending),
// only those with status when status is not empty. Without a status it
// leaves out scheduled jobs (ticks and retries waiting for their time),
// which clients see only when they ask for them.
func (s *Scheduler) List(ctx context.Context, status Status) ([]Job, error) {
	q := s.db.WithContext(ctx).Order("submitted_at DESC, id DESC")
	if status != "" {
		q = q.Where("status = ?", status)
	} else {
		q = q.Where("status <> ?", StatusScheduled)
	}
	jobs := []Job{}
	if err := q.Find(&jobs).Error; err != nil {
		return nil, problem.Database("job.Scheduler.List", err)
	}
	return jobs, nil
}

func (s *Scheduler) countPending(ctx context.Context) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Job{}).Where("status = ?", StatusPending).Count(&n).Error
	return int(n), err
}
