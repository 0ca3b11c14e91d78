package chapkit

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
)

// RetentionConfig prunes finished jobs and their artifacts in the
// background (the task-retention recipe of chapkit's guide as an option).
// Pending and running jobs are never touched.
type RetentionConfig struct {
	// MaxAge removes jobs that finished longer ago than this; 0 = no limit.
	MaxAge time.Duration
	// MaxCount keeps at most this many finished jobs, the most recently
	// finished; 0 = no limit.
	MaxCount int
	// Interval between pruning rounds; 0 = one minute.
	Interval time.Duration
	// BatchSize is how many jobs one transaction removes, so the API is
	// never blocked for long; 0 = 500.
	BatchSize int
}

var finishedStatuses = []job.Status{job.StatusCompleted, job.StatusFailed, job.StatusCanceled}

// Prune applies the retention policy once and returns how many jobs it
// removed together with their artifacts. It is what the background pruner
// runs every interval; it returns 0 when no policy is configured.
func (a *App) Prune(ctx context.Context) (int, error) {
	if a.s.retention == nil || a.db == nil {
		return 0, nil
	}
	r := *a.s.retention
	removed := 0
	for {
		var batch []job.Job
		q := a.db.WithContext(ctx).Model(&job.Job{}).Select("id", "artifact_id").
			Where("status IN ?", finishedStatuses)
		switch {
		case r.MaxAge > 0:
			q = q.Where("finished_at < ?", wire.Now().Add(-r.MaxAge)).Order("finished_at ASC").Limit(r.BatchSize)
		default:
			q = nil
		}
		if q != nil {
			if err := q.Find(&batch).Error; err != nil {
				return removed, err
			}
		}
		if len(batch) == 0 && r.MaxCount > 0 {
			err := a.db.WithContext(ctx).Model(&job.Job{}).Select("id", "artifact_id").
				Where("status IN ?", finishedStatuses).
				Order("finished_at DESC, id DESC").Offset(r.MaxCount).Limit(r.BatchSize).
				Find(&batch).Error
			if err != nil {
				return removed, err
			}
		}
		if len(batch) == 0 {
			return removed, nil
		}
		if err := a.removeJobs(ctx, batch); err != nil {
			return removed, err
		}
		removed += len(batch)
	}
}

// removeJobs deletes one batch of finished jobs and their artifacts in a
// transaction.
func (a *App) removeJobs(ctx context.Context, batch []job.Job) error {
	ids := make([]string, 0, len(batch))
	var arts []string
	for _, j := range batch {
		ids = append(ids, j.ID)
		if j.ArtifactID != nil {
			arts = append(arts, *j.ArtifactID)
		}
	}
	return a.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if len(arts) > 0 {
			if err := tx.Where("id IN ?", arts).Delete(&artifact.Artifact{}).Error; err != nil {
				return fmt.Errorf("prune artifacts: %w", err)
			}
		}
		return tx.Where("id IN ? AND status IN ?", ids, finishedStatuses).Delete(&job.Job{}).Error
	})
}

// runPruner prunes every interval until stop is closed.
func (a *App) runPruner(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	r := *a.s.retention
	t := time.NewTicker(r.Interval)
	defer t.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		// Only the leader prunes, so replicas sharing a database do not
		// race each other for the same rows.
		if a.sched == nil || a.sched.IsLeader() {
			if n, err := a.Prune(ctx); err != nil && ctx.Err() == nil {
				a.log.Warn("retention: prune failed", "error", err)
			} else if n > 0 {
				a.log.Info("retention: pruned finished jobs", "count", n)
			}
		}
		cancel()
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}
