package job

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

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
	// ErrRescued: this node lost the job: it could not write its heartbeat
	// in time, so another node rescues (or already rescued) the job.
	ErrRescued = errors.New("job rescued by another node")
)

// Sentinels of the scheduler's operations; each is also a *problem.Error
// (match with errors.Is).
var (
	ErrNotFound  = problem.NotFound("job.Scheduler", "Job not found")
	ErrDraining  = problem.Unavailable("job.Scheduler", 30, "The service is shutting down and accepts no new jobs")
	ErrQueueFull = problem.Unavailable("job.Scheduler", 5, "Too many pending jobs; retry later")
	// ErrNotStarted is no longer returned: Submit and SubmitMany store
	// jobs pending before Start. It stays so that code matching it still
	// compiles.
	//
	// Deprecated: nothing returns it.
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

// BatchCommitter is a [Committer] whose write the scheduler can merge
// with those of other jobs completing in the same transaction: the
// results sharing one [Batcher] are written by one CommitJobs call, after
// the jobs were marked completed. When such a batch fails, the scheduler
// applies it again one job at a time through CommitJob, so a result that
// cannot be stored fails only its own job.
type BatchCommitter interface {
	Committer
	// Batcher returns what writes this result together with others, or
	// nil to have it committed alone. Values returned must be comparable.
	Batcher() Batcher
}

// Batcher writes the results of several jobs at once.
type Batcher interface {
	// CommitJobs writes results inside tx, results[i] under the artifact
	// id ids[i], which the scheduler has already recorded with its job.
	CommitJobs(tx *gorm.DB, results []BatchCommitter, ids []string) error
}

// Run is what a handler knows about the job it runs.
type Run struct {
	// Job is a copy of the job row as it started.
	Job *Job
	s   *Scheduler
	e   *runEntry
}

// StartedOnSubmission reports whether the job started in the same write
// that stored it: submitted on this node while it had a free slot and no
// job waited, so no claim came between. Its start time is then its
// submission time.
func (r *Run) StartedOnSubmission() bool {
	if r.s == nil || r.Job == nil {
		return false
	}
	return r.Job.StartedAt != nil && r.Job.StartedAt.Equal(r.Job.SubmittedAt) && r.Job.Node != nil && *r.Job.Node == r.s.node.ID
}

// SetProcessGroup records the process group of a shell job, so that the
// node rescuing the job after a crash can kill what it started.
func (r *Run) SetProcessGroup(ctx context.Context, pgid int) error {
	return r.s.db.WithContext(ctx).Model(&Job{}).Where("id = ? AND node = ? AND attempt = ?", r.Job.ID, r.s.node.ID, r.Job.Attempt).Update("pgid", pgid).Error
}

// Detach tells the scheduler that a call the handler started goes on after
// the handler returns: a function that ignored its context past a timeout.
// Go cannot stop a goroutine, so the job is recorded at once and its
// concurrency slot stays taken until done is closed or Config.AbandonAfter
// passes; after that the slot is released and the call is counted as
// abandoned (see [Scheduler.Abandoned]) until it returns. Call it at most
// once, before the handler returns.
func (r *Run) Detach(done <-chan struct{}) {
	if r.e != nil {
		r.e.detached = done
	}
}

// Config configures a [Scheduler]. The zero value is usable.
type Config struct {
	// MaxConcurrency caps the jobs running at once on this node; 0 or less
	// means unlimited. Every node sharing a database has its own limit.
	MaxConcurrency int
	// MaxPending bounds the pending jobs in the whole database (all nodes
	// together): past it Submit answers ErrQueueFull. Each node counts the
	// rows at every heartbeat and its own submissions in between, and
	// counts again exactly before it refuses one. 0 means 10,000.
	MaxPending int
	// DrainTimeout is how long Stop lets running jobs finish before it
	// cancels them; 0 means the default 30 s.
	DrainTimeout time.Duration
	// RetryInterrupted, when above 1, is the number of attempts a job gets
	// in all: a job interrupted by a crash or a drain goes back to pending
	// until then, instead of failing. Off by default, because running a
	// shell command again can repeat its side effects.
	RetryInterrupted int
	// RescueAfter is the heartbeat age past which a node is dead and its
	// running jobs are rescued; 0 means 15 s. Nodes write a heartbeat every
	// fifth of it. A node that cannot write one for three quarters of it
	// cancels its own running jobs, so that a rescued job never runs on
	// two nodes at once.
	RescueAfter time.Duration
	// PollInterval is how often a node looks for work and for changes that
	// no notification told it of (SQLite shared by several processes, or a
	// notification lost while PostgreSQL reconnected); 0 means 1 s.
	PollInterval time.Duration
	// AbandonAfter is how long a cancelled or timed-out call that ignores
	// its context keeps its concurrency slot before it is abandoned; 0
	// means 10 s.
	AbandonAfter time.Duration
	// Listener receives notifications from the other nodes (PostgreSQL
	// LISTEN); nil means nodes learn of each other's changes by polling.
	Listener Listener
	// KillLeftovers kills what a job started, given the job id and its
	// recorded process group (0 for a running job that recorded none);
	// it is called when a job of a dead node of this kernel and pid
	// namespace is rescued. nil kills the recorded process group, without
	// checking that it still belongs to the job (the app installs a
	// checking one).
	KillLeftovers func(jobID string, pgid int) error
	// NodeID names this node in the database, in job records and in
	// metrics; "" means a fresh ULID. Two live schedulers must never share
	// one.
	NodeID string
	// Logger receives job logs; nil discards them.
	Logger *slog.Logger
	// Observer, when set, is told of every state change (metrics).
	Observer Observer
	// TracerProvider, when set, traces executions: Submit stores the
	// caller's span context with the job, and each execution runs in a
	// span that continues it (docs/tracing.md). nil traces nothing and
	// costs nothing.
	TracerProvider trace.TracerProvider
}

// Listener delivers the notifications nodes send each other.
type Listener interface {
	// Listen receives the payloads sent on channel until ctx ends. It calls
	// connected after every (re)connection, so the caller can look for what
	// it missed meanwhile, and fn for each payload, from one goroutine.
	Listen(ctx context.Context, channel string, connected func(), fn func(payload string))
}

// Observer is told of job state changes after they are stored.
type Observer interface {
	JobChanged(j *Job, from Status)
}

// Defaults of [Config].
const (
	DefaultMaxPending   = 10_000
	DefaultDrainTimeout = 30 * time.Second
	DefaultRescueAfter  = 15 * time.Second
	DefaultPollInterval = time.Second
	DefaultAbandonAfter = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.MaxPending <= 0 {
		c.MaxPending = DefaultMaxPending
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.RescueAfter <= 0 {
		c.RescueAfter = DefaultRescueAfter
	}
	if c.PollInterval <= 0 {
		c.PollInterval = DefaultPollInterval
	}
	if c.AbandonAfter <= 0 {
		c.AbandonAfter = DefaultAbandonAfter
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}
