package job

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
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
// make: whether its task is still enabled, whether an execution of its task
// still runs, whether the tick is too old to run.

// Mark records how far a schedule series is planned (table
// chapkit_schedule_marks): the latest tick ever planned for it, the time
// that tick was computed from, and the schedule it was computed with.
// Ticks are planned in order and the planner never goes back before
// Through, so no tick up to Through is ever planned again, whatever became
// of its row (run, skipped, deleted through the API, pruned); ticks the
// planner passed over (missed while no node ran) are not planned at all.
// Rows of the jobs table cannot carry this alone: a deleted row would
// leave its tick free to be planned a second time.
type Mark struct {
	Series string `gorm:"primaryKey;type:text"`
	// Through is the latest tick planned for the series.
	Through time.Time `gorm:"not null"`
	// From is where the planner computed Through from: the tick before it,
	// or the moment planning (re)started.
	From time.Time `gorm:"column:planned_from;not null"`
	// Schedule identifies the schedule Through was computed with (the
	// planner's own key, such as expression and time zone), so a change
	// of it is told apart from any other change of the task. "" in marks
	// written before the column existed.
	Schedule string `gorm:"type:text;not null;default:''"`
}

// TableName pins the table name.
func (Mark) TableName() string { return "chapkit_schedule_marks" }

// SkipObserver is implemented by an [Observer] that wants to know of the
// scheduled jobs dropped without running (see [Scheduler.Skip]). A skipped
// job leaves no row, so it is no state change that JobChanged reports.
type SkipObserver interface {
	JobSkipped(j *Job, reason string)
}

// RescueAfter returns the rescue horizon of the scheduler's configuration
// (Config.RescueAfter, with its default): a dead node's running jobs are
// rescued, and its leader lease passes to a live node, within it.
func (s *Scheduler) RescueAfter() time.Duration { return s.cfg.RescueAfter }

// Plan stores a scheduled job of the given kind for the tick runAt of the
// schedule series, computed from the time from (the previous tick, or where
// planning started) with the schedule identified by schedule (stored in
// the series' [Mark]). It reports false, storing nothing, when the series is
// planned through runAt or later already, by any node at any time: the
// series' [Mark] moves forward in the transaction that stores the row, so
// a tick is planned once even when its row is deleted afterwards, and the
// unique key (series, run_at) backs this up.
func (s *Scheduler) Plan(ctx context.Context, kind string, args any, series, schedule string, from, runAt time.Time) (bool, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return false, fmt.Errorf("job: encode arguments of %s job: %w", kind, err)
	}
	trigger := TriggerSchedule
	at := runAt.UTC()
	j := &Job{ID: wire.NewID(), Kind: kind, Args: raw, Status: StatusScheduled, SubmittedAt: wire.Now(), Attempt: 1,
		RunAt: &at, Series: &series, Trigger: &trigger}
	stored := false
	err = s.atomic(ctx, func(tx *gorm.DB) error {
		// The mark's row lock (PostgreSQL) or the single writer (SQLite)
		// orders two nodes planning the same tick: the second finds the
		// mark moved and stores nothing.
		res := tx.Exec(`INSERT INTO chapkit_schedule_marks (series, through, planned_from, schedule) VALUES (?, ?, ?, ?)
ON CONFLICT (series) DO UPDATE SET through = excluded.through, planned_from = excluded.planned_from, schedule = excluded.schedule
WHERE chapkit_schedule_marks.through < excluded.through`, series, at, from.UTC(), schedule)
		if res.Error != nil || res.RowsAffected == 0 {
			return res.Error
		}
		res = tx.Clauses(clause.OnConflict{DoNothing: true}).Create(j)
		stored = res.RowsAffected == 1
		return res.Error
	})
	if err != nil {
		return false, problem.Database("job.Scheduler.Plan", err)
	}
	if stored && s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j.clone(), "")
	}
	return stored, nil
}

// PlannedThrough returns the [Mark] of series, or nil when the series is
// not planned (never, or not since [Scheduler.Unplan] or
// [Scheduler.UnplanOthers] reset it).
func (s *Scheduler) PlannedThrough(ctx context.Context, series string) (*Mark, error) {
	var m Mark
	if err := s.db.WithContext(ctx).Where("series = ?", series).Limit(1).Find(&m).Error; err != nil {
		return nil, err
	}
	if m.Series == "" {
		return nil, nil
	}
	return &m, nil
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
		Attempt: j.Attempt + 1, RunAt: &at, Trigger: &trigger, RetryOf: &first,
		// A retry belongs to the request that submitted the first
		// attempt: its log lines and its trace say so.
		RequestID: j.RequestID, TraceParent: j.TraceParent}
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

// argKey is what a job argument name passed to Active may look like; it
// becomes part of a JSON path.
var argKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Active counts the pending and running jobs of kind whose JSON arguments
// have the member key with the string value, whatever created them (an
// API call, a schedule or a retry). key must be a plain name
// ([A-Za-z_][A-Za-z0-9_]*).
func (s *Scheduler) Active(ctx context.Context, kind, key, value string) (int, error) {
	member, err := s.argMember(key, "args")
	if err != nil {
		return 0, err
	}
	var n int64
	err = s.db.WithContext(ctx).Model(&Job{}).
		Where("status IN ? AND kind = ? AND "+member+" = ?", []Status{StatusPending, StatusRunning}, kind, value).
		Count(&n).Error
	return int(n), err
}

// argMember returns the SQL expression of the string member key of the
// JSON arguments in column, or an error when key is not a plain name.
func (s *Scheduler) argMember(key, column string) (string, error) {
	if !argKey.MatchString(key) {
		return "", fmt.Errorf("job: argument name %q is not a plain name", key)
	}
	// Arguments are stored as JSON text on SQLite (a BLOB column read as
	// JSONB by newer SQLite unless cast) and as json on PostgreSQL.
	if s.d.name == postgresDialect.name {
		return "(" + column + " ->> '" + key + "')", nil
	}
	return "json_extract(CAST(" + column + " AS TEXT), '$." + key + "')", nil
}

// PromoteIdle is [Scheduler.Promote] under the condition that no pending
// or running job of j's kind has the argument key equal to value (the
// overlap rule of a task schedule: key "task_id", value the task). The
// check and the promotion are one step: on PostgreSQL a transaction lock
// per (kind, value) orders them against any other PromoteIdle of the same
// value, on any node; on SQLite the single writer does. So two nodes
// promoting ticks or retries of one task at once never both succeed. A
// Submit of that task is not ordered against it: it never waits for
// overlap, and landing just before or after the promotion is the same to
// it. It reports false when j was not promoted, because such a job is
// active or because j is no longer scheduled; [Scheduler.Skip] or
// [Scheduler.Defer] then tells which.
func (s *Scheduler) PromoteIdle(ctx context.Context, j *Job, key, value string) (bool, error) {
	member, err := s.argMember(key, "a.args")
	if err != nil {
		return false, err
	}
	applied := false
	err = s.atomic(ctx, func(tx *gorm.DB) error {
		if s.d.name == postgresDialect.name {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(hashtext(?))", "chapkit overlap "+j.Kind+" "+value).Error; err != nil {
				return err
			}
		}
		res := tx.Exec(`UPDATE jobs SET status = ? WHERE id = ? AND status = ? AND attempt = ?
AND NOT EXISTS (SELECT 1 FROM jobs a WHERE a.status IN (?, ?) AND a.kind = ? AND `+member+` = ?)`,
			StatusPending, j.ID, StatusScheduled, j.Attempt, StatusPending, StatusRunning, j.Kind, value)
		applied = res.RowsAffected == 1
		if res.Error != nil || !applied {
			return res.Error
		}
		return s.notifyTx(tx, opChanged, j.ID)
	})
	if err != nil {
		return false, problem.Database("job.Scheduler.PromoteIdle", err)
	}
	if applied {
		s.promoted(ctx, j)
	}
	return applied, nil
}

// Defer moves the run_at of a scheduled job to at: a due job that must
// wait longer. It reports false when the job is no longer scheduled.
func (s *Scheduler) Defer(ctx context.Context, j *Job, at time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&Job{}).Where("id = ? AND status = ?", j.ID, StatusScheduled).
		Update("run_at", at.UTC())
	return res.RowsAffected == 1, res.Error
}

// UpSince returns the earliest time from which some node has run without
// a gap until now, as far as the rows of chapkit_nodes tell: a live node
// (heartbeat within its own rescue horizon) covers the time from its
// start on, a node declared dead from its start to its last heartbeat, and
// chains of overlapping nodes join. A node stopped cleanly or rescued has
// no row any more, so the time before a full restart is not covered. Times
// are the database's clock. With no live node it returns the database's
// now.
func (s *Scheduler) UpSince(ctx context.Context) (time.Time, error) {
	type span struct {
		StartedMS   int64 `gorm:"column:started_ms"`
		HeartbeatMS int64 `gorm:"column:heartbeat_ms"`
		NowMS       int64 `gorm:"column:now_ms"`
		Live        bool  `gorm:"column:live"`
	}
	var rows []span
	err := s.db.WithContext(ctx).Raw(`SELECT started_ms, heartbeat_ms, ` + s.d.nowMS + ` AS now_ms,
heartbeat_ms >= ` + s.d.nowMS + ` - rescue_after_ms AS live FROM chapkit_nodes`).Scan(&rows).Error
	if err != nil {
		return time.Time{}, problem.Database("job.Scheduler.UpSince", err)
	}
	if len(rows) == 0 {
		// No node at all (the caller is not one): nothing vouches for
		// any time before now.
		var now int64
		if err := s.db.WithContext(ctx).Raw("SELECT " + s.d.nowMS).Scan(&now).Error; err != nil {
			return time.Time{}, problem.Database("job.Scheduler.UpSince", err)
		}
		return msTime(now), nil
	}
	since, live := int64(0), false
	for _, r := range rows {
		if r.Live && (!live || r.StartedMS < since) {
			since, live = r.StartedMS, true
		}
	}
	if !live {
		return msTime(rows[0].NowMS), nil
	}
	// Extend the covered span back through dead nodes that overlap it,
	// until none does. Node tables are small.
	for changed := true; changed; {
		changed = false
		for _, r := range rows {
			if !r.Live && r.StartedMS < since && r.HeartbeatMS >= since {
				since, changed = r.StartedMS, true
			}
		}
	}
	return msTime(since), nil
}

// Unplan removes the scheduled jobs of series due after after, and resets
// the series' mark: the ticks of a schedule that changed. The planner
// then plans the series again from a time of its choosing. It returns how
// many rows it removed.
func (s *Scheduler) Unplan(ctx context.Context, series string, after time.Time) (int, error) {
	removed := 0
	err := s.atomic(ctx, func(tx *gorm.DB) error {
		res := tx.Where("series = ? AND status = ? AND run_at > ?", series, StatusScheduled, after.UTC()).Delete(&Job{})
		if res.Error != nil {
			return res.Error
		}
		removed = int(res.RowsAffected)
		return tx.Where("series = ?", series).Delete(&Mark{}).Error
	})
	return removed, err
}

// UnplanOthers removes the scheduled jobs and the marks of every series
// not in keep: schedules that were removed, or whose task was disabled or
// deleted. A series planned again later starts afresh, so the ticks it
// missed meanwhile are not replayed. It returns how many rows it removed.
func (s *Scheduler) UnplanOthers(ctx context.Context, keep []string) (int, error) {
	removed := 0
	err := s.atomic(ctx, func(tx *gorm.DB) error {
		// keep is never empty in the conditions: NOT IN () is not valid
		// SQL, and "" is no series.
		others := append([]string{""}, keep...)
		res := tx.Where("status = ? AND series IS NOT NULL AND series NOT IN ?", StatusScheduled, others).Delete(&Job{})
		if res.Error != nil {
			return res.Error
		}
		removed = int(res.RowsAffected)
		return tx.Where("series NOT IN ?", others).Delete(&Mark{}).Error
	})
	return removed, err
}

// Promote moves a due scheduled job to pending, where any node claims it.
// It reports false when the job is no longer scheduled (cancelled,
// deleted, skipped, or promoted by another node).
func (s *Scheduler) Promote(ctx context.Context, j *Job) (bool, error) {
	applied, err := s.update(ctx, j.ID, j.Attempt, StatusScheduled, map[string]any{"status": StatusPending})
	if err != nil || !applied {
		return false, err
	}
	s.promoted(ctx, j)
	return true, nil
}

// promoted tells the nodes, the fetch loop and the observers that j went
// from scheduled to pending.
func (s *Scheduler) promoted(ctx context.Context, j *Job) {
	s.mu.Lock()
	s.pendingEst++
	s.mu.Unlock()
	s.notify(ctx, opInserted)
	s.poke()
	c := j.clone()
	c.Status = StatusPending
	s.changed(c, StatusScheduled)
}

// Skip drops a scheduled job without running it: its row is removed, as
// DELETE /api/v1/jobs/{id} removes one (subscribers of the job see it
// deleted), so lists of jobs never show ticks that did not run; an
// [Observer] that implements [SkipObserver] is told, with reason. It
// reports false when the job is no longer scheduled.
func (s *Scheduler) Skip(ctx context.Context, j *Job, reason string) (bool, error) {
	found := false
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ? AND status = ?", j.ID, StatusScheduled).Delete(&Job{})
		found = res.RowsAffected > 0
		if res.Error != nil || !found {
			return res.Error
		}
		return s.notifyTx(tx, opDeleted, j.ID)
	})
	if err != nil || !found {
		return false, err
	}
	s.publish(j.ID, Event{Deleted: true})
	if o, ok := s.cfg.Observer.(SkipObserver); ok {
		o.JobSkipped(j.clone(), reason)
	}
	return true, nil
}

// atomic runs fn in a transaction on both engines. Unlike [Scheduler.tx],
// which leaves SQLite's single statements on their own, it is for writes
// of more than one statement that must land together: a schedule's mark
// must never move without the tick row it stands for, or the tick would
// be lost for good.
func (s *Scheduler) atomic(ctx context.Context, fn func(tx *gorm.DB) error) error {
	return s.db.WithContext(ctx).Transaction(fn)
}
