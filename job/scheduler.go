package job

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// Causes a job's context is cancelled with; context.Cause(ctx) inside a
// handler tells which one stopped it.
var (
	// ErrCanceled: the job was cancelled through Cancel ($cancel).
	ErrCanceled = errors.New("job canceled")
	// ErrDeleted: the job was deleted while unfinished.
	ErrDeleted = errors.New("job deleted")
	// ErrShutdown: the service's drain deadline expired while it ran.
	ErrShutdown = errors.New("job interrupted by shutdown")
)

// Sentinels of the scheduler's operations; each is also a *problem.Error
// (match with errors.Is).
var (
	ErrNotFound   = problem.NotFound("job.Scheduler", "Job not found")
	ErrDraining   = problem.Unavailable("job.Scheduler", 30, "The service is shutting down and accepts no new jobs")
	ErrQueueFull  = problem.Unavailable("job.Scheduler", 5, "Too many pending jobs; retry later")
	ErrNotStarted = errors.New("job: scheduler not started")
)

// FinishedError is returned by Cancel for a job that already ended.
type FinishedError struct {
	ID     string
	Status Status
}

func (e *FinishedError) Error() string { return fmt.Sprintf("Job %s is already %s", e.ID, e.Status) }

// Handler runs the jobs of one kind. It gets the job's context, cancelled
// when the job is cancelled, deleted or interrupted by shutdown; a handler
// must return soon after. The returned value becomes the job's result: a
// [Committer] is committed together with the job's completion, a ULID (as
// ulid.ULID or string) sets artifact_id. A returned error fails the job.
type Handler func(ctx context.Context, run *Run) (any, error)

// Committer is a result that writes something (an artifact) in the same
// transaction that marks its job completed: either both are stored or
// neither, and a job cancelled meanwhile stores nothing.
type Committer interface {
	// CommitJob writes inside tx and returns the artifact id to record
	// (empty for none).
	CommitJob(tx *gorm.DB) (artifactID string, err error)
}

// Run is what a handler knows about the job it runs.
type Run struct {
	// Job is a copy of the job row as it started.
	Job *Job
	s   *Scheduler
}

// SetProcessGroup records the process group of a shell job, so a restart
// after a crash can kill it (docs/jobs.md, recovery).
func (r *Run) SetProcessGroup(ctx context.Context, pgid int) error {
	return r.s.db.WithContext(ctx).Model(&Job{}).Where("id = ?", r.Job.ID).Update("pgid", pgid).Error
}

// Config configures a [Scheduler]. The zero value is usable.
type Config struct {
	// MaxConcurrency caps the jobs running at once; 0 or less = unlimited.
	MaxConcurrency int
	// MaxPending is how many jobs may wait for a slot before Submit answers
	// ErrQueueFull; 0 means the default 10,000.
	MaxPending int
	// DrainTimeout is how long Stop lets running jobs finish before it
	// cancels them; 0 means the default 30 s.
	DrainTimeout time.Duration
	// RetryInterrupted, when above 1, is the number of attempts a job gets
	// in all: a job interrupted by a crash or a drain goes back to pending
	// until then, instead of failing. Off by default, because running a
	// shell command again can repeat its side effects.
	RetryInterrupted int
	// Logger receives job logs; nil discards them.
	Logger *slog.Logger
	// Observer, when set, is told of every state change (metrics).
	Observer Observer
}

// Observer is told of job state changes after they are stored.
type Observer interface {
	JobChanged(j *Job, from Status)
}

func (c Config) withDefaults() Config {
	if c.MaxPending <= 0 {
		c.MaxPending = 10_000
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

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
}

// Event is one change of a job seen by a subscriber: the new record, or
// Deleted when the job was removed.
type Event struct {
	Job     *Job
	Deleted bool
}

type subscriber struct{ ch chan Event }

// Scheduler runs jobs. It is safe for concurrent use. Start it once; after
// Stop it cannot be started again.
type Scheduler struct {
	db       *gorm.DB
	cfg      Config
	log      *slog.Logger
	handlers map[string]Handler

	mu       sync.Mutex
	st       state
	maxConc  int
	queue    []*Job          // FIFO of jobs waiting for a slot
	queued   map[string]*Job // the jobs of queue still waiting (cancelled ones are dropped lazily)
	reserved int             // submissions between the bound check and the enqueue
	running  map[string]*runEntry
	subs     map[string]map[*subscriber]struct{}
	wg       sync.WaitGroup
	// runCtx is the lifetime context of the started scheduler: every job
	// context derives from it, never from a request, because $execute
	// answers before its job runs.
	runCtx    context.Context
	runCancel context.CancelCauseFunc
	// writes feeds the batching writer (writer.go) while writerOn;
	// writeMu keeps a send from racing the writer's stop.
	writes     chan *writeOp
	writeMu    sync.RWMutex
	writerOn   bool
	writerStop chan struct{}
	writerDone chan struct{}
}

// New returns a scheduler storing its jobs in db. Register handlers with
// Handle, then call Start.
func New(db *gorm.DB, cfg Config) *Scheduler {
	cfg = cfg.withDefaults()
	return &Scheduler{
		db:         db,
		cfg:        cfg,
		log:        cfg.Logger,
		handlers:   map[string]Handler{},
		maxConc:    cfg.MaxConcurrency,
		queued:     map[string]*Job{},
		running:    map[string]*runEntry{},
		subs:       map[string]map[*subscriber]struct{}{},
		writes:     make(chan *writeOp, maxBatch),
		writerStop: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// Migrate creates or updates the jobs table.
func Migrate(ctx context.Context, db *gorm.DB) error {
	return db.WithContext(ctx).AutoMigrate(&Job{})
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

// RetriesEnabled reports whether interrupted jobs are retried, which is
// when job records show their attempt.
func (s *Scheduler) RetriesEnabled() bool { return s.cfg.RetryInterrupted > 1 }

// MaxConcurrency returns the current limit; 0 means unlimited.
func (s *Scheduler) MaxConcurrency() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxConc
}

// SetMaxConcurrency replaces the limit at run time; 0 or less = unlimited.
func (s *Scheduler) SetMaxConcurrency(n int) {
	if n < 0 {
		n = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxConc = n
	s.dispatchLocked()
}

// Counts returns how many jobs wait for a slot and how many run.
func (s *Scheduler) Counts() (pending, running int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queued), len(s.running)
}

// Start recovers the jobs a previous run left (docs/jobs.md) and starts
// running jobs. Jobs found running are interrupted: their recorded process
// group is killed and they fail (or go back to pending where retries are
// configured). Jobs found pending are queued again in submission order.
func (s *Scheduler) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.st != stateNew {
		s.mu.Unlock()
		return errors.New("job: scheduler already started")
	}
	s.mu.Unlock()

	var stale []Job
	if err := s.db.WithContext(ctx).Where("status = ?", StatusRunning).Find(&stale).Error; err != nil {
		return fmt.Errorf("job: recover running jobs: %w", err)
	}
	for i := range stale {
		j := &stale[i]
		if j.PGID != nil && *j.PGID > 1 {
			// The group of a dead service's shell job: kill it before the
			// job is recorded as interrupted, so nothing keeps running.
			if err := syscall.Kill(-*j.PGID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				s.log.Warn("kill process group of interrupted job", "job_id", j.ID, "pgid", *j.PGID, "error", err)
			}
		}
		if _, err := s.interrupt(ctx, j); err != nil {
			return fmt.Errorf("job: recover job %s: %w", j.ID, err)
		}
	}

	var pending []*Job
	if err := s.db.WithContext(ctx).Where("status = ?", StatusPending).Order("submitted_at ASC, id ASC").Find(&pending).Error; err != nil {
		return fmt.Errorf("job: recover pending jobs: %w", err)
	}
	if len(stale)+len(pending) > 0 {
		s.log.Info("recovered jobs", "interrupted", len(stale), "requeued", len(pending))
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeMu.Lock()
	s.writerOn = true
	s.writeMu.Unlock()
	go s.runWriter(s.writerStop)
	s.runCtx, s.runCancel = context.WithCancelCause(context.Background())
	for _, j := range pending {
		s.queue = append(s.queue, j)
		s.queued[j.ID] = j
	}
	s.st = stateStarted
	s.dispatchLocked()
	return nil
}

// interrupt records a job stopped by a crash or a drain: failed with
// InterruptedError, or back to pending when retries allow another attempt.
// It returns the stored record, or nil when the job was not running.
func (s *Scheduler) interrupt(ctx context.Context, j *Job) (*Job, error) {
	now := wire.Now()
	updated := j.clone()
	var values map[string]any
	if s.RetriesEnabled() && j.Attempt < s.cfg.RetryInterrupted {
		updated.Status, updated.StartedAt, updated.PGID = StatusPending, nil, nil
		updated.Attempt = j.Attempt + 1
		values = map[string]any{"status": StatusPending, "started_at": nil, "pgid": nil, "attempt": updated.Attempt}
	} else {
		msg := InterruptedError
		updated.Status, updated.FinishedAt, updated.Error, updated.ErrorTraceback = StatusFailed, &now, &msg, &msg
		values = map[string]any{"status": StatusFailed, "finished_at": now, "error": msg, "error_traceback": msg}
	}
	res := s.db.WithContext(ctx).Model(&Job{}).Where("id = ? AND status = ?", j.ID, StatusRunning).Updates(values)
	if res.Error != nil {
		return nil, res.Error
	}
	if res.RowsAffected == 0 {
		return nil, nil
	}
	s.changed(updated, StatusRunning)
	return updated, nil
}

// Submit stores a new pending job of the given kind and queues it. It never
// blocks on the concurrency limit. It returns ErrDraining once Stop began
// and ErrQueueFull past Config.MaxPending waiting jobs.
func (s *Scheduler) Submit(ctx context.Context, kind string, args any) (string, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", fmt.Errorf("job: encode arguments of %s job: %w", kind, err)
	}
	s.mu.Lock()
	switch {
	case s.st == stateNew:
		s.mu.Unlock()
		return "", ErrNotStarted
	case s.st != stateStarted:
		s.mu.Unlock()
		return "", ErrDraining
	case s.handlers[kind] == nil:
		s.mu.Unlock()
		return "", fmt.Errorf("job: no handler for kind %q", kind)
	case len(s.queued)+s.reserved >= s.cfg.MaxPending:
		s.mu.Unlock()
		return "", ErrQueueFull
	}
	s.reserved++
	s.mu.Unlock()

	j := &Job{ID: wire.NewID(), Kind: kind, Args: raw, Status: StatusPending, SubmittedAt: wire.Now(), Attempt: 1}
	err = s.write(&writeOp{kind: opInsert, job: j}).err

	s.mu.Lock()
	defer s.mu.Unlock()
	s.reserved--
	if errors.Is(err, errWriterStopped) {
		return "", ErrDraining
	}
	if err != nil {
		return "", problem.Database("job.Scheduler.Submit", err)
	}
	// A drain that began meanwhile leaves the stored job pending; it runs
	// after the next start like every other pending job.
	if s.st == stateStarted {
		s.queue = append(s.queue, j)
		s.queued[j.ID] = j
		s.dispatchLocked()
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j.clone(), "")
	}
	return j.ID, nil
}

// dispatchLocked starts queued jobs while slots are free. s.mu is held.
func (s *Scheduler) dispatchLocked() {
	if s.st != stateStarted {
		return
	}
	for len(s.queue) > 0 && (s.maxConc <= 0 || len(s.running) < s.maxConc) {
		j := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		if _, ok := s.queued[j.ID]; !ok {
			continue // cancelled or deleted while waiting
		}
		delete(s.queued, j.ID)
		ctx, cancel := context.WithCancelCause(s.runCtx)
		e := &runEntry{job: j, ctx: ctx, cancel: cancel, done: make(chan struct{})}
		s.running[j.ID] = e
		s.wg.Add(1)
		go s.work(e)
	}
	if len(s.queue) == 0 && cap(s.queue) > 1024 {
		s.queue = nil // let a drained burst's backing array go
	}
}

func (s *Scheduler) work(e *runEntry) {
	defer func() {
		e.cancel(nil)
		s.mu.Lock()
		delete(s.running, e.job.ID)
		close(e.done)
		s.dispatchLocked()
		s.mu.Unlock()
		s.wg.Done()
	}()
	if e.ctx.Err() != nil {
		return // cancelled before it started: the canceller stored the outcome
	}
	j := e.job.clone()
	start := &writeOp{kind: opStart, job: j, at: wire.Now()}
	res := s.write(start)
	if res.err != nil {
		if e.ctx.Err() == nil && !errors.Is(res.err, errWriterStopped) {
			s.fail(j, StatusPending, fmt.Errorf("start job: %w", res.err), nil)
		}
		return
	}
	if !res.applied {
		return // cancelled or deleted between dispatch and start
	}
	started := start.at
	j.Status, j.StartedAt = StatusRunning, &started
	s.changed(j.clone(), StatusPending)
	s.log.Debug("job started", "job_id", j.ID, "kind", j.Kind)

	result, err, stack := s.call(e.ctx, j)
	if e.ctx.Err() != nil && isOurCause(context.Cause(e.ctx)) {
		return // Cancel, Delete or Stop stored the outcome already
	}
	if err != nil {
		s.fail(j, StatusRunning, err, stack)
		return
	}
	s.complete(j, result)
}

func isOurCause(err error) bool {
	return errors.Is(err, ErrCanceled) || errors.Is(err, ErrDeleted) || errors.Is(err, ErrShutdown)
}

// call runs the handler, turning a panic into an error with its stack.
func (s *Scheduler) call(ctx context.Context, j *Job) (result any, err error, stack []byte) {
	defer func() {
		if r := recover(); r != nil {
			stack = debug.Stack()
			err = &panicError{value: r}
			s.log.Error("job handler panicked", "job_id", j.ID, "kind", j.Kind, "panic", r, "stack", string(stack))
		}
	}()
	h := s.handlers[j.Kind]
	if h == nil {
		return nil, fmt.Errorf("no handler for job kind %q", j.Kind), nil
	}
	result, err = h(ctx, &Run{Job: j.clone(), s: s})
	if err != nil {
		stack = debug.Stack()
	}
	return result, err, stack
}

type panicError struct{ value any }

func (p *panicError) Error() string     { return fmt.Sprint(p.value) }
func (p *panicError) ErrorType() string { return "panic" }

// complete stores the result and the completion in one transaction (a
// batch of the writer's).
func (s *Scheduler) complete(j *Job, result any) {
	finished := wire.Now()
	res := s.write(&writeOp{kind: opComplete, job: j, at: finished, result: result})
	switch {
	case errors.Is(res.err, errWriterStopped):
		return // stopped meanwhile: Stop recorded the job as interrupted
	case res.err != nil:
		s.fail(j, StatusRunning, fmt.Errorf("store result: %w", res.err), nil)
		return
	case !res.applied:
		return // cancelled or deleted while finishing: nothing stored
	}
	j.Status, j.FinishedAt, j.ArtifactID = StatusCompleted, &finished, res.artifactID
	s.changed(j.clone(), StatusRunning)
	s.log.Info("job completed", "job_id", j.ID, "kind", j.Kind, "duration_ms", finished.Sub(*j.StartedAt).Milliseconds())
}

// fail stores a failed outcome: error = "<Type>: <message>".
func (s *Scheduler) fail(j *Job, from Status, cause error, stack []byte) {
	finished := wire.Now()
	line := problem.ErrorType(cause) + ": " + cause.Error()
	if len(stack) == 0 {
		stack = debug.Stack()
	}
	trace := line + "\n\n" + string(stack)
	res := s.db.WithContext(s.runCtx).Model(&Job{}).Where("id = ? AND status = ?", j.ID, from).
		Updates(map[string]any{"status": StatusFailed, "finished_at": finished, "error": line, "error_traceback": trace})
	if res.Error != nil {
		s.log.Error("store job failure", "job_id", j.ID, "error", res.Error, "job_error", line)
		return
	}
	if res.RowsAffected == 0 {
		return
	}
	j.Status, j.FinishedAt, j.Error, j.ErrorTraceback = StatusFailed, &finished, &line, &trace
	s.changed(j.clone(), from)
	s.log.Info("job failed", "job_id", j.ID, "kind", j.Kind, "error", line)
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
// only those with status when status is not empty.
func (s *Scheduler) List(ctx context.Context, status Status) ([]Job, error) {
	q := s.db.WithContext(ctx).Order("submitted_at DESC, id DESC")
	if status != "" {
		q = q.Where("status = ?", status)
	}
	jobs := []Job{}
	if err := q.Find(&jobs).Error; err != nil {
		return nil, problem.Database("job.Scheduler.List", err)
	}
	return jobs, nil
}

// cancelGrace bounds how long Cancel, Delete and Stop wait for a cancelled
// job's goroutine to return. Shell jobs return at once (their process group
// is killed); a function that ignores its context keeps its goroutine, but
// its job is already recorded and nothing it returns is stored.
const cancelGrace = time.Second

// Cancel cancels a pending or running job and keeps it with status
// canceled. A running job's context is cancelled with ErrCanceled. It
// returns the stored record, ErrNotFound, or a *FinishedError.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*Job, error) {
	return s.stop(ctx, id, ErrCanceled)
}

// Delete cancels the job if it is unfinished and removes its record. It
// returns ErrNotFound for an unknown id.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	_, err := s.stop(ctx, id, ErrDeleted)
	return err
}

func (s *Scheduler) stop(ctx context.Context, id string, cause error) (*Job, error) {
	if !wire.ValidID(id) {
		return nil, ErrNotFound
	}
	s.mu.Lock()
	e := s.running[id]
	if e != nil {
		e.cancel(cause)
	}
	delete(s.queued, id)
	s.mu.Unlock()

	var out *Job
	var err error
	if cause == ErrDeleted {
		err = s.remove(ctx, id)
	} else {
		out, err = s.markCanceled(ctx, id)
	}
	if e != nil {
		s.awaitStop(ctx, e)
	}
	return out, err
}

func (s *Scheduler) awaitStop(ctx context.Context, e *runEntry) {
	t := time.NewTimer(cancelGrace)
	defer t.Stop()
	select {
	case <-e.done:
	case <-ctx.Done():
	case <-t.C:
		s.log.Warn("cancelled job has not returned yet", "job_id", e.job.ID, "kind", e.job.Kind)
	}
}

func (s *Scheduler) markCanceled(ctx context.Context, id string) (*Job, error) {
	now := wire.Now()
	var j Job
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("id = ?", id).Limit(1).Find(&j).Error; err != nil {
			return err
		}
		if j.ID == "" || j.Status.Terminal() {
			return nil
		}
		return tx.Model(&Job{}).Where("id = ?", id).Updates(map[string]any{"status": StatusCanceled, "finished_at": now}).Error
	})
	switch {
	case err != nil:
		return nil, problem.Database("job.Scheduler.Cancel", err)
	case j.ID == "":
		return nil, ErrNotFound
	case j.Status.Terminal():
		return nil, &FinishedError{ID: id, Status: j.Status}
	}
	from := j.Status
	j.Status, j.FinishedAt = StatusCanceled, &now
	s.changed(j.clone(), from)
	s.log.Info("job canceled", "job_id", id, "kind", j.Kind)
	return &j, nil
}

func (s *Scheduler) remove(ctx context.Context, id string) error {
	res := s.db.WithContext(ctx).Where("id = ?", id).Delete(&Job{})
	if res.Error != nil {
		return problem.Database("job.Scheduler.Delete", res.Error)
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	s.publish(id, Event{Deleted: true})
	return nil
}

// Wait blocks until the job is terminal and returns it; ErrNotFound when
// it does not exist or is deleted meanwhile; ctx's error when ctx ends
// first (the job keeps running).
func (s *Scheduler) Wait(ctx context.Context, id string) (*Job, error) {
	events, unsubscribe := s.Subscribe(id)
	defer unsubscribe()
	j, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	for !j.Status.Terminal() {
		select {
		case ev := <-events:
			if ev.Deleted {
				return nil, ErrNotFound
			}
			j = ev.Job
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return j, nil
}

// subscriberBuffer holds more events than one job can produce between two
// reads (pending, running, a terminal state, deletion, with room for
// retried attempts), so a subscriber that reads promptly never misses one.
const subscriberBuffer = 16

// Subscribe returns the changes of job id from now on, and a function that
// ends the subscription. Events are sent without blocking the scheduler: a
// subscriber that stops reading loses events past the buffer.
func (s *Scheduler) Subscribe(id string) (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, subscriberBuffer)}
	s.mu.Lock()
	m := s.subs[id]
	if m == nil {
		m = map[*subscriber]struct{}{}
		s.subs[id] = m
	}
	m[sub] = struct{}{}
	s.mu.Unlock()
	return sub.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if m := s.subs[id]; m != nil {
			delete(m, sub)
			if len(m) == 0 {
				delete(s.subs, id)
			}
		}
	}
}

func (s *Scheduler) publish(id string, ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs[id] {
		select {
		case sub.ch <- ev:
		default:
		}
	}
}

// changed publishes a stored transition to subscribers and the observer.
func (s *Scheduler) changed(j *Job, from Status) {
	s.publish(j.ID, Event{Job: j})
	if s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j, from)
	}
}

// Stop drains the scheduler (docs/jobs.md, drain): Submit answers ErrDraining,
// waiting jobs stay pending in the database for the next start, running
// jobs get until the drain deadline (Config.DrainTimeout, or ctx's deadline
// when sooner). Jobs still running then are cancelled with ErrShutdown,
// their process groups killed, and recorded as interrupted. Stop is
// idempotent and a no-op before Start; it returns ctx's error when ctx
// ended before the drain did.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.st != stateStarted {
		s.mu.Unlock()
		return nil
	}
	s.st = stateDraining
	s.queue, s.queued = nil, map[string]*Job{}
	s.mu.Unlock()

	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	var err error
	select {
	case <-idle:
	case <-deadline.C:
	case <-ctx.Done():
		err = ctx.Err()
	}

	s.mu.Lock()
	left := make([]*runEntry, 0, len(s.running))
	for _, e := range s.running {
		e.cancel(ErrShutdown)
		left = append(left, e)
	}
	s.mu.Unlock()
	// Record the outcome first, so it is stored even when a function
	// ignores its context; use a fresh context because ctx may be over.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, e := range left {
		j, gerr := s.Get(recordCtx, e.job.ID)
		if gerr != nil {
			continue
		}
		if _, ierr := s.interrupt(recordCtx, j); ierr != nil {
			s.log.Error("record interrupted job", "job_id", j.ID, "error", ierr)
		}
	}
	for _, e := range left {
		s.awaitStop(recordCtx, e)
	}
	if len(left) > 0 {
		s.log.Warn("drain deadline passed; running jobs interrupted", "count", len(left))
	}

	s.mu.Lock()
	s.st = stateStopped
	s.runCancel(ErrShutdown)
	s.mu.Unlock()
	s.stopWriter()
	return err
}
