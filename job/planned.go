package job

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// Scheduled jobs: rows with status scheduled wait in the database for
// their run_at, so a restart or a crash neither loses nor repeats them.
// Nothing claims them while they wait; whoever plans them (the task
// schedules, see package task) promotes each one to pending once it is due,
// with a compare-and-set from scheduled, so a promotion happens once even
// when two nodes try. Promotion is a separate step, rather than part of
// the claim, because a due tick needs a decision the job layer cannot
// make: whether its task is still enabled, whether the previous execution
// still runs, whether the tick is too old to run.

// SkippedPrefix starts the error of a scheduled job that was skipped
// instead of run (marked canceled without having run).
const SkippedPrefix = "skipped: "

// Plan stores a scheduled job of the given kind for the tick runAt of the
// schedule series. It reports false, storing nothing, when that tick is
// planned already (by any node, at any time): the unique key (series,
// run_at) makes a tick plannable once.
func (s *Scheduler) Plan(ctx context.Context, kind string, args any, series string, runAt time.Time) (bool, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return false, fmt.Errorf("job: encode arguments of %s job: %w", kind, err)
	}
	trigger := TriggerSchedule
	at := runAt.UTC()
	j := &Job{ID: wire.NewID(), Kind: kind, Args: raw, Status: StatusScheduled, SubmittedAt: wire.Now(), Attempt: 1,
		RunAt: &at, Series: &series, Trigger: &trigger}
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(j)
	if res.Error != nil {
		return false, problem.Database("job.Scheduler.Plan", res.Error)
	}
	if res.RowsAffected == 0 {
		return false, nil
	}
	if s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j.clone(), "")
	}
	return true, nil
}

// NewRetry returns the scheduled job that retries j at runAt: same kind
// and arguments, the next attempt, linked to the first job of the chain.
// Store it with InsertRetry.
func NewRetry(j *Job, runAt time.Time) *Job {
	first := j.ID
	if j.RetryOf != nil {
		first = *j.RetryOf
	}
	trigger := TriggerRetry
	at := runAt.UTC()
	return &Job{ID: wire.NewID(), Kind: j.Kind, Args: j.Args, Status: StatusScheduled, SubmittedAt: wire.Now(),
		Attempt: j.Attempt + 1, RunAt: &at, Trigger: &trigger, RetryOf: &first}
}

// InsertRetry stores a job made by NewRetry inside tx, the transaction
// that completes the failed attempt (a [Committer] calls it), so the
// attempt's outcome and the next attempt are stored together or not at all.
func InsertRetry(tx *gorm.DB, retry *Job) error {
	return tx.Create(retry).Error
}

// Due returns up to limit scheduled jobs whose run_at is at or before now,
// earliest first.
func (s *Scheduler) Due(ctx context.Context, now time.Time, limit int) ([]Job, error) {
	jobs := []Job{}
	err := s.db.WithContext(ctx).Where("status = ? AND run_at <= ?", StatusScheduled, now.UTC()).
		Order("run_at, id").Limit(limit).Find(&jobs).Error
	return jobs, err
}

// NextDue returns the earliest run_at of the scheduled jobs, or nil when
// none waits.
func (s *Scheduler) NextDue(ctx context.Context) (*time.Time, error) {
	var j Job
	err := s.db.WithContext(ctx).Select("run_at").Where("status = ? AND run_at IS NOT NULL", StatusScheduled).
		Order("run_at").Limit(1).Find(&j).Error
	if err != nil {
		return nil, err
	}
	return j.RunAt, nil
}

// LastPlanned returns the latest run_at at or before upTo planned for
// series (in any status), or nil when there is none.
func (s *Scheduler) LastPlanned(ctx context.Context, series string, upTo time.Time) (*time.Time, error) {
	var j Job
	err := s.db.WithContext(ctx).Select("run_at").Where("series = ? AND run_at <= ?", series, upTo.UTC()).Order("run_at DESC").Limit(1).Find(&j).Error
	if err != nil {
		return nil, err
	}
	return j.RunAt, nil
}

// Active counts the pending and running jobs of series.
func (s *Scheduler) Active(ctx context.Context, series string) (int, error) {
	var n int64
	err := s.db.WithContext(ctx).Model(&Job{}).Where("series = ? AND status IN ?", series, []Status{StatusPending, StatusRunning}).Count(&n).Error
	return int(n), err
}

// Unplan removes the scheduled jobs of series due after after, except
// the one due at keep (when not nil): the ticks of a schedule that changed
// or stopped. It returns how many it removed.
func (s *Scheduler) Unplan(ctx context.Context, series string, after time.Time, keep *time.Time) (int, error) {
	q := s.db.WithContext(ctx).Where("series = ? AND status = ? AND run_at > ?", series, StatusScheduled, after.UTC())
	if keep != nil {
		q = q.Where("run_at <> ?", keep.UTC())
	}
	res := q.Delete(&Job{})
	return int(res.RowsAffected), res.Error
}

// UnplanOthers removes the scheduled jobs of every series not in keep:
// schedules that were removed, or whose task was disabled or deleted.
func (s *Scheduler) UnplanOthers(ctx context.Context, keep []string) (int, error) {
	q := s.db.WithContext(ctx).Where("status = ? AND series IS NOT NULL", StatusScheduled)
	if len(keep) > 0 {
		q = q.Where("series NOT IN ?", keep)
	}
	res := q.Delete(&Job{})
	return int(res.RowsAffected), res.Error
}

// Promote moves a due scheduled job to pending, where any node claims it.
// It reports false when the job is no longer scheduled (cancelled, or
// promoted by another node).
func (s *Scheduler) Promote(ctx context.Context, j *Job) (bool, error) {
	applied, err := s.update(ctx, j.ID, j.Attempt, StatusScheduled, map[string]any{"status": StatusPending})
	if err != nil || !applied {
		return false, err
	}
	s.mu.Lock()
	s.pendingEst++
	s.mu.Unlock()
	s.notify(ctx, opInserted)
	s.poke()
	c := j.clone()
	c.Status = StatusPending
	s.changed(c, StatusScheduled)
	return true, nil
}

// Skip marks a scheduled job canceled without running it, with the error
// SkippedPrefix + reason. It reports false when the job is no longer
// scheduled.
func (s *Scheduler) Skip(ctx context.Context, j *Job, reason string) (bool, error) {
	now := wire.Now()
	msg := SkippedPrefix + reason
	applied, err := s.update(ctx, j.ID, j.Attempt, StatusScheduled, map[string]any{"status": StatusCanceled, "finished_at": now, "error": msg})
	if err != nil || !applied {
		return false, err
	}
	c := j.clone()
	c.Status, c.FinishedAt, c.Error = StatusCanceled, &now, &msg
	s.changed(c, StatusScheduled)
	return true, nil
}

// Skipped reports whether j is a scheduled job that was skipped.
func Skipped(j *Job) bool {
	return j.Status == StatusCanceled && j.Error != nil && strings.HasPrefix(*j.Error, SkippedPrefix)
}
