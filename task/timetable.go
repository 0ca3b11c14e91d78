package task

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"

	"github.com/chapkit-go/chapkit/job"
)

// planner is what the timetable needs of the job scheduler.
type planner interface {
	IsLeader() bool
	UpSince(ctx context.Context) (time.Time, error)
	Plan(ctx context.Context, kind string, args any, series, schedule string, from, runAt time.Time) (bool, error)
	PlannedThrough(ctx context.Context, series string) (*job.Mark, error)
	Due(ctx context.Context, now time.Time, limit int) ([]job.Job, error)
	NextDue(ctx context.Context) (*time.Time, error)
	Unplan(ctx context.Context, series string, after time.Time) (int, error)
	UnplanOthers(ctx context.Context, keep []string) (int, error)
	Promote(ctx context.Context, j *job.Job) (bool, error)
	PromoteIdle(ctx context.Context, j *job.Job, key, value string) (bool, error)
	Defer(ctx context.Context, j *job.Job, at time.Time) (bool, error)
	Skip(ctx context.Context, j *job.Job, reason string) (bool, error)
}

// TimetableConfig configures a [Timetable]. The zero value is usable.
type TimetableConfig struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// PollInterval is the longest the timetable sleeps between two looks
	// at the database; 0 means 1 s. It also wakes at the next due time.
	PollInterval time.Duration
	// StaleAfter caps how late a tick may run even though nodes ran
	// throughout (a leader whose timetable stalled, say): a tick found
	// later than this is missed, and planning resumes from now. Whether a
	// late tick runs is otherwise decided by whether some node ran at its
	// time (see [Timetable.Step]), which does not depend on any node's
	// rescue horizon; the cap only bounds the burst after a stall. 0 means
	// one hour; a negative value means no cap.
	StaleAfter time.Duration
	Logger     *slog.Logger
}

// DefaultStaleAfter is TimetableConfig.StaleAfter's default: far longer
// than any hand-over of the leader lease, short enough that a stalled
// leader does not replay a day of ticks.
const DefaultStaleAfter = time.Hour

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
	if cfg.StaleAfter == 0 {
		cfg.StaleAfter = DefaultStaleAfter
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
//
// A tick is missed when no node ran at its time: it lies before the start
// of the span during which nodes have run without a gap up to now
// ([job.Scheduler.UpSince]). Missed ticks are not replayed: the one
// already waiting runs as the catch-up run when its task has
// schedule_catch_up and is skipped otherwise, and the planner goes on
// from the end of the gap. A late tick that some node was running for
// (the leader died and a successor took over) is not missed and runs,
// however long the hand-over took.
func (tt *Timetable) Step(ctx context.Context) error {
	now := tt.cfg.Now().UTC()
	up, err := tt.jobs.UpSince(ctx)
	if err != nil {
		return err
	}
	if err := tt.plan(ctx, now, up); err != nil {
		return err
	}
	for {
		due, err := tt.jobs.Due(ctx, now, dueBatch)
		if err != nil {
			return err
		}
		for i := range due {
			if err := tt.fire(ctx, &due[i], now, up); err != nil {
				return err
			}
		}
		if len(due) < dueBatch {
			return nil
		}
	}
}

// scheduleKey identifies what a task's ticks are computed from: its
// expression and time zone. Other changes of the task leave its waiting
// tick where it is.
func scheduleKey(o *Options) string {
	zone := "UTC"
	if o.ScheduleTimezone != nil {
		zone = *o.ScheduleTimezone
	}
	return zone + " " + *o.Schedule
}

// plan makes sure every enabled task with a schedule has its ticks up to
// the first one after now planned, and removes waiting ticks of schedules
// that changed, stopped or whose task is disabled or gone.
//
// Each series' mark ([job.Mark]) says how far it is planned. Planning
// goes on from the mark, so the ticks that fell due while leadership moved
// are planned and run late; but never from before up, the start of the
// time nodes have run without a gap (ticks in a gap are missed), nor, with
// StaleAfter set, from further back than that. A tick is planned once: a
// waiting row deleted through the API, or a skipped tick, is not planned
// again. A change of the expression or time zone replans from now (so
// @every restarts its interval); other changes of the task do not move
// its ticks. A disabled task loses its mark, so enabling it again starts
// its schedule afresh.
func (tt *Timetable) plan(ctx context.Context, now, up time.Time) error {
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
		key := scheduleKey(&t.Options)
		keep = append(keep, t.ID)
		mark, err := tt.jobs.PlannedThrough(ctx, t.ID)
		if err != nil {
			return err
		}
		base := now
		switch {
		case mark == nil:
		case mark.Schedule != "" && mark.Schedule != key:
			// The schedule changed: its waiting tick moves.
			if _, err := tt.jobs.Unplan(ctx, t.ID, now); err != nil {
				return err
			}
			mark = nil
		case mark.Through.After(now):
			continue // the next tick is planned
		default:
			base = mark.Through
			if base.Before(up) {
				base = up
			}
			if tt.cfg.StaleAfter > 0 && now.Sub(base) > tt.cfg.StaleAfter {
				base = now
			}
		}
		for range 1000 {
			next := sch.Next(base)
			if next.IsZero() {
				break
			}
			if mark == nil || next.After(mark.Through) {
				if _, err := tt.jobs.Plan(ctx, JobKind, jobArgs{TaskID: t.ID, TaskType: t.TaskType}, t.ID, key, base, next); err != nil {
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
// (overlap "skip"), a missed tick without catch-up (see [Timetable.Step]).
// A skipped tick leaves no job row; it is logged and counted
// (chapkit_schedule_ticks_skipped_total). A due retry of a task with
// overlap "skip" waits, one poll interval at a time, while an execution of
// the task is pending or running.
func (tt *Timetable) fire(ctx context.Context, j *job.Job, now, up time.Time) error {
	if j.Series == nil {
		return tt.fireRetry(ctx, j, now)
	}
	t, err := tt.m.find(ctx, *j.Series)
	if err != nil {
		return err
	}
	missed := j.RunAt != nil && (j.RunAt.Before(up) || tt.cfg.StaleAfter > 0 && now.Sub(*j.RunAt) > tt.cfg.StaleAfter)
	reason := ""
	switch {
	case t == nil || !t.Enabled || t.Options.schedule() == nil:
		reason = "the task no longer has this schedule"
	case missed && !t.Options.catchUp():
		reason = "the tick was missed while no node ran"
	case !t.Options.overlapAllowed():
		// Any execution of the task counts, whatever started it: a tick,
		// a retry or $execute. Overlap "skip" exists so that two runs of
		// one task never work on the same things at once.
		promoted, err := tt.jobs.PromoteIdle(ctx, j, "task_id", t.ID)
		if err != nil || promoted {
			return err
		}
		reason = "an execution of the task was still pending or running"
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

// fireRetry promotes a retry whose delay has passed. A retry of a task
// with a schedule under overlap "skip" is an execution like a tick: it
// does not start beside another execution of the task, but rather than
// being dropped it waits until that one ends.
func (tt *Timetable) fireRetry(ctx context.Context, j *job.Job, now time.Time) error {
	var args jobArgs
	if j.Kind != JobKind || json.Unmarshal(j.Args, &args) != nil || args.TaskID == "" {
		_, err := tt.jobs.Promote(ctx, j)
		return err
	}
	t, err := tt.m.find(ctx, args.TaskID)
	if err != nil {
		return err
	}
	if t == nil || t.Options.schedule() == nil || t.Options.overlapAllowed() {
		_, err := tt.jobs.Promote(ctx, j)
		return err
	}
	promoted, err := tt.jobs.PromoteIdle(ctx, j, "task_id", t.ID)
	if err != nil || promoted {
		return err
	}
	_, err = tt.jobs.Defer(ctx, j, now.Add(tt.cfg.PollInterval))
	return err
}
