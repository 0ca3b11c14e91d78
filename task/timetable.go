package task

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/chapkit-go/chapkit/job"
)

// planner is what the timetable needs of the job scheduler.
type planner interface {
	IsLeader() bool
	Plan(ctx context.Context, kind string, args any, series string, runAt time.Time) (bool, error)
	Due(ctx context.Context, now time.Time, limit int) ([]job.Job, error)
	NextDue(ctx context.Context) (*time.Time, error)
	LastPlanned(ctx context.Context, series string, upTo time.Time) (*time.Time, error)
	Active(ctx context.Context, series string) (int, error)
	Unplan(ctx context.Context, series string, after time.Time, keep *time.Time) (int, error)
	UnplanOthers(ctx context.Context, keep []string) (int, error)
	Promote(ctx context.Context, j *job.Job) (bool, error)
	Skip(ctx context.Context, j *job.Job, reason string) (bool, error)
}

// TimetableConfig configures a [Timetable]. The zero value is usable.
type TimetableConfig struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PollInterval is the longest the timetable sleeps between two looks
	// at the database; 0 means 1 s. It also wakes at the next due time.
	PollInterval time.Duration
	// StaleAfter is how late a tick may be promoted and still count as on
	// time; a tick found later than this is a missed tick, run only when
	// its task has schedule_catch_up. 0 means 30 s, longer than a
	// leadership hand-over takes with the default rescue horizon.
	StaleAfter time.Duration
	Logger     *slog.Logger
}

// Timetable fires the ticks of task schedules and starts retries when
// their delay has passed. Only the node holding the leader lease acts;
// every tick is a job row whose unique key is (task id, tick time), and
// every promotion a compare-and-set, so a tick runs at most once even when
// leadership moves (docs/jobs.md, schedules and retries).
type Timetable struct {
	m    *Manager
	jobs planner
	cfg  TimetableConfig

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewTimetable returns a timetable for m's tasks on jobs (the scheduler
// the manager submits to).
func NewTimetable(m *Manager, jobs planner, cfg TimetableConfig) *Timetable {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Timetable{m: m, jobs: jobs, cfg: cfg, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start runs the timetable in the background until Stop.
func (tt *Timetable) Start() {
	go tt.loop()
}

// Stop ends the background loop and waits for it. Idempotent.
func (tt *Timetable) Stop() {
	tt.once.Do(func() { close(tt.stop) })
	<-tt.done
}

func (tt *Timetable) loop() {
	defer close(tt.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-tt.stop
		cancel()
	}()
	for {
		wait := tt.cfg.PollInterval
		if tt.jobs.IsLeader() {
			if err := tt.Step(ctx); err != nil && ctx.Err() == nil {
				tt.cfg.Logger.Warn("schedules and retries", "error", err)
			}
			if next, err := tt.jobs.NextDue(ctx); err == nil && next != nil {
				wait = min(wait, max(next.Sub(tt.cfg.Now()), time.Millisecond))
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-tt.stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// dueBatch bounds the due rows one step promotes.
const dueBatch = 256

// Step plans the next tick of every enabled scheduled task and promotes
// the due rows, as of the clock's now. The loop calls it on the leader;
// tests call it directly.
func (tt *Timetable) Step(ctx context.Context) error {
	now := tt.cfg.Now().UTC()
	if err := tt.plan(ctx, now); err != nil {
		return err
	}
	for {
		due, err := tt.jobs.Due(ctx, now, dueBatch)
		if err != nil {
			return err
		}
		for i := range due {
			if err := tt.fire(ctx, &due[i], now); err != nil {
				return err
			}
		}
		if len(due) < dueBatch {
			return nil
		}
	}
}

// plan makes sure every enabled task with a schedule has its ticks up to
// the first one after now stored, and removes waiting ticks of schedules
// that changed, stopped or whose task is disabled or gone.
func (tt *Timetable) plan(ctx context.Context, now time.Time) error {
	var tasks []Task
	if err := tt.m.db.WithContext(ctx).Where("enabled = ? AND schedule IS NOT NULL", true).Order("id").Find(&tasks).Error; err != nil {
		return err
	}
	keep := make([]string, 0, len(tasks))
	for i := range tasks {
		t := &tasks[i]
		sch := t.Options.schedule()
		if sch == nil {
			continue
		}
		keep = append(keep, t.ID)
		last, err := tt.jobs.LastPlanned(ctx, t.ID, now)
		if err != nil {
			return err
		}
		// Ticks are planned from the last one stored, so none is left out
		// while nodes run (a leadership hand-over included), but never
		// from before the task's last change. When the last stored tick
		// is older than the stale horizon no node ran meanwhile, and the
		// ticks missed are not replayed: planning resumes from now.
		base := now
		if last != nil && now.Sub(*last) <= tt.cfg.StaleAfter {
			base = *last
		}
		if t.UpdatedAt.After(base) {
			base = t.UpdatedAt
		}
		var next time.Time
		for range 1000 {
			next = sch.Next(base)
			if next.IsZero() {
				break
			}
			if _, err := tt.jobs.Plan(ctx, JobKind, jobArgs{TaskID: t.ID, TaskType: t.TaskType}, t.ID, next); err != nil {
				return err
			}
			if next.After(now) {
				break
			}
			base = next
		}
		var keepAt *time.Time
		if !next.IsZero() {
			keepAt = &next
		}
		if _, err := tt.jobs.Unplan(ctx, t.ID, now, keepAt); err != nil {
			return err
		}
	}
	_, err := tt.jobs.UnplanOthers(ctx, keep)
	return err
}

// fire promotes one due row, or skips it: a tick whose task no longer
// fires it, a tick while the previous execution still runs (overlap
// "skip"), a tick found too late without catch-up.
func (tt *Timetable) fire(ctx context.Context, j *job.Job, now time.Time) error {
	if j.Series == nil {
		_, err := tt.jobs.Promote(ctx, j) // a retry whose delay passed
		return err
	}
	t, err := tt.m.find(ctx, *j.Series)
	if err != nil {
		return err
	}
	reason := ""
	switch {
	case t == nil || !t.Enabled || t.Options.schedule() == nil:
		reason = "the task no longer has this schedule"
	case j.RunAt != nil && now.Sub(*j.RunAt) > tt.cfg.StaleAfter && !t.Options.catchUp():
		reason = "the tick was missed while no node ran"
	case !t.Options.overlapAllowed():
		n, err := tt.jobs.Active(ctx, *j.Series)
		if err != nil {
			return err
		}
		if n > 0 {
			reason = "the previous execution of the task was still running"
		}
	}
	if reason != "" {
		_, err = tt.jobs.Skip(ctx, j, reason)
		return err
	}
	_, err = tt.jobs.Promote(ctx, j)
	return err
}
