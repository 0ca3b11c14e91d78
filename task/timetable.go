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
	RescueAfter() time.Duration
	Plan(ctx context.Context, kind string, args any, series string, from, runAt time.Time) (bool, error)
	PlannedThrough(ctx context.Context, series string) (*job.Mark, error)
	Due(ctx context.Context, now time.Time, limit int) ([]job.Job, error)
	NextDue(ctx context.Context) (*time.Time, error)
	Active(ctx context.Context, kind, key, value string) (int, error)
	Unplan(ctx context.Context, series string, after time.Time) (int, error)
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
	// its task has schedule_catch_up, and planning resumes from now rather
	// than from the last tick planned. 0 means the scheduler's rescue
	// horizon plus two poll intervals: a dead leader's lease passes to a
	// live node within the horizon (it lasts half of it and is sought every
	// fifth), the dead leader may have left a due tick unfired for up to
	// one poll interval, and its successor looks within one more. So a
	// leader change never drops a tick, and an outage longer than that
	// never replays old ones (docs/jobs.md, schedules and retries).
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
		cfg.StaleAfter = jobs.RescueAfter() + 2*cfg.PollInterval
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
// the first one after now planned, and removes waiting ticks of schedules
// that changed, stopped or whose task is disabled or gone.
//
// Each series' mark ([job.Mark]) says how far it is planned. Planning
// goes on from the mark, so the ticks that fell due while leadership moved
// are planned and run late, but never from before the task's last change
// (its updated_at), nor from further back than StaleAfter: after a longer
// outage the missed ticks are not replayed. A tick is planned once: a
// waiting row deleted through the API, or a skipped tick, is not planned
// again. A disabled task loses its mark, so enabling it again starts its
// schedule afresh.
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
		mark, err := tt.jobs.PlannedThrough(ctx, t.ID)
		if err != nil {
			return err
		}
		base := now
		switch {
		case mark == nil:
		case mark.Through.After(now):
			// The next tick is planned. It stays unless the task changed
			// in a way that moves it (a new expression or zone; for
			// @every, any change, which restarts the interval).
			from := mark.From
			if t.UpdatedAt.After(from) {
				from = t.UpdatedAt
			}
			if sch.Next(from).Equal(mark.Through) {
				continue
			}
			if _, err := tt.jobs.Unplan(ctx, t.ID, now); err != nil {
				return err
			}
			mark, base = nil, from
		default:
			base = mark.Through
		}
		if t.UpdatedAt.After(base) {
			base = t.UpdatedAt
		}
		if now.Sub(base) > tt.cfg.StaleAfter {
			base = now
		}
		for range 1000 {
			next := sch.Next(base)
			if next.IsZero() {
				break
			}
			if mark == nil || next.After(mark.Through) {
				if _, err := tt.jobs.Plan(ctx, JobKind, jobArgs{TaskID: t.ID, TaskType: t.TaskType}, t.ID, base, next); err != nil {
					return err
				}
			}
			if next.After(now) {
				break
			}
			base = next
		}
	}
	_, err := tt.jobs.UnplanOthers(ctx, keep)
	return err
}

// fire promotes one due row, or skips it: a tick whose task no longer
// fires it, a tick while an execution of the task is pending or running
// (overlap "skip"), a tick found too late without catch-up. A skipped tick
// leaves no job row; it is logged and counted
// (chapkit_schedule_ticks_skipped_total).
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
		// Any execution of the task counts, whatever started it: a tick,
		// a retry or $execute. Overlap "skip" exists so that two runs of
		// one task never work on the same things at once.
		n, err := tt.jobs.Active(ctx, JobKind, "task_id", t.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			reason = "an execution of the task was still pending or running"
		}
	}
	if reason == "" {
		_, err = tt.jobs.Promote(ctx, j)
		return err
	}
	skipped, err := tt.jobs.Skip(ctx, j, reason)
	if skipped {
		tt.cfg.Logger.Info("schedule tick skipped", "task_id", *j.Series, "tick", j.RunAt, "reason", reason)
	}
	return err
}
