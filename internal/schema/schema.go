// Package schema brings a database to the schema of this release with
// numbered migrations, recorded in the table chapkit_schema_migrations.
//
// All migrations run in one transaction. On PostgreSQL the transaction
// first takes an advisory lock, and on SQLite it is an immediate
// transaction (the write lock is taken at BEGIN), so when several
// replicas start at the same moment exactly one applies each migration
// and the others wait, then find nothing left to do.
package schema

import (
	"context"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/task"
)

// Migration is one numbered step. Up runs inside the migration
// transaction.
type Migration struct {
	Version int
	Name    string
	Up      func(ctx context.Context, tx *gorm.DB) error
}

// models makes the tables match this release's models: it creates what is
// missing and adds missing columns and indexes, never dropping anything or
// touching rows. It runs on every Migrate, under the migration lock, so a
// database made by any earlier release (including those that kept no
// version records) gets every table and column it lacks.
func models(ctx context.Context, tx *gorm.DB) error {
	if err := artifact.Migrate(ctx, tx); err != nil {
		return err
	}
	if err := task.Migrate(ctx, tx); err != nil {
		return err
	}
	return job.Migrate(ctx, tx)
}

// Migrations are the numbered steps that changing models alone cannot
// express (data changes, renames), in order, each applied once.
var Migrations = []Migration{
	{1, "jobs left running by the single-node schema are rescued at start-up (no data change)", func(context.Context, *gorm.DB) error { return nil }},
	{2, "jobs record the id and trace context of the request that submitted them", addJobRequestColumns},
	{3, "the jobs table keeps the claim's index in claim order and indexes series and retry_of only where set", dropReplacedJobIndexes},
}

// dropReplacedJobIndexes removes the indexes of jobs that the models step
// has just replaced: (status, submitted_at) by (status, submitted_at, id),
// and those of (series, run_at) and retry_of by partial ones of the rows
// that set them. Every index costs each change of a job's status a write,
// so the old ones are not kept beside the new.
func dropReplacedJobIndexes(ctx context.Context, tx *gorm.DB) error {
	for _, name := range []string{"idx_jobs_status_submitted", "idx_jobs_series_run_at", "idx_jobs_retry_of"} {
		if err := tx.WithContext(ctx).Exec("DROP INDEX IF EXISTS " + name).Error; err != nil {
			return err
		}
	}
	return nil
}

// addJobRequestColumns makes sure the jobs table has request_id and
// trace_parent (nullable text, so rows of earlier releases read as "no
// request"). The models step has normally added them already.
func addJobRequestColumns(ctx context.Context, tx *gorm.DB) error {
	m := tx.WithContext(ctx).Migrator()
	for _, field := range []string{"RequestID", "TraceParent"} {
		if m.HasColumn(&job.Job{}, field) {
			continue
		}
		if err := m.AddColumn(&job.Job{}, field); err != nil {
			return err
		}
	}
	return nil
}

// lockKey is the PostgreSQL advisory lock of migrations ("chapkit" in
// ASCII, as a number).
const lockKey = 0x63686170_6b6974

type record struct {
	Version   int `gorm:"primaryKey;autoIncrement:false"`
	Name      string
	AppliedAt time.Time
}

func (record) TableName() string { return "chapkit_schema_migrations" }

// Migrate applies the migrations db has not had yet and returns their
// versions. It is safe to call from several processes at once.
func Migrate(ctx context.Context, db *gorm.DB) ([]int, error) {
	var applied []int
	err := db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if tx.Dialector.Name() == "postgres" {
			if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", lockKey).Error; err != nil {
				return fmt.Errorf("lock: %w", err)
			}
		}
		if err := tx.AutoMigrate(&record{}); err != nil {
			return err
		}
		if err := models(ctx, tx); err != nil {
			return err
		}
		var done []int
		if err := tx.Model(&record{}).Pluck("version", &done).Error; err != nil {
			return err
		}
		have := map[int]bool{}
		for _, v := range done {
			have[v] = true
		}
		for _, m := range Migrations {
			if have[m.Version] {
				continue
			}
			if err := m.Up(ctx, tx); err != nil {
				return fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
			}
			if err := tx.Create(&record{Version: m.Version, Name: m.Name, AppliedAt: time.Now().UTC()}).Error; err != nil {
				return err
			}
			applied = append(applied, m.Version)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chapkit: migrate database: %w", err)
	}
	return applied, nil
}
