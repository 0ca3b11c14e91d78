package schema_test

import (
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/schema"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/job"
)

// jobIndexes lists the names of the indexes of table jobs, sorted.
func jobIndexes(t *testing.T, db *gorm.DB) []string {
	t.Helper()
	var names []string
	q := "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'jobs' AND name NOT LIKE 'sqlite_autoindex%'"
	if db.Dialector.Name() == "postgres" {
		q = "SELECT indexname FROM pg_indexes WHERE tablename = 'jobs' AND schemaname = current_schema() AND indexname <> 'jobs_pkey'"
	}
	if err := db.Raw(q).Scan(&names).Error; err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// TestJobIndexesReplacedOnUpgrade brings a database that has the jobs
// indexes of the earlier releases to this schema, on both engines: the
// replaced indexes are gone, the new ones exist, and the partial unique
// index still refuses a second job for the same schedule tick while
// allowing any number of jobs without a series.
func TestJobIndexesReplacedOnUpgrade(t *testing.T) {
	engines := map[string]func(t *testing.T) *gorm.DB{
		"sqlite": func(t *testing.T) *gorm.DB {
			db, err := sqlitedb.Open(filepath.Join(t.TempDir(), "test.db"), sqlitedb.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
		"postgres": func(t *testing.T) *gorm.DB {
			db, err := pgdb.Open(pgtest.URL(t), pgdb.Config{})
			if err != nil {
				t.Fatal(err)
			}
			return db
		},
	}
	for name, open := range engines {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			t.Cleanup(func() {
				if sqlDB, err := db.DB(); err == nil {
					_ = sqlDB.Close()
				}
			})
			ctx := t.Context()
			if _, err := schema.Migrate(ctx, db); err != nil {
				t.Fatal(err)
			}
			// Put the database back as an earlier release left it: the
			// old indexes, and migration 3 not yet applied.
			for _, q := range []string{
				"CREATE INDEX idx_jobs_status_submitted ON jobs (status, submitted_at)",
				"CREATE UNIQUE INDEX idx_jobs_series_run_at ON jobs (series, run_at)",
				"CREATE INDEX idx_jobs_retry_of ON jobs (retry_of)",
				"DROP INDEX idx_jobs_status_submitted_id",
				"DROP INDEX idx_jobs_series_run_at_set",
				"DROP INDEX idx_jobs_retry_of_set",
				"DELETE FROM chapkit_schema_migrations WHERE version = 3",
			} {
				if err := db.Exec(q).Error; err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			applied, err := schema.Migrate(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]int{3}, applied); diff != "" {
				t.Errorf("migrations applied (-want +got):\n%s", diff)
			}
			want := []string{"idx_jobs_node", "idx_jobs_retry_of_set", "idx_jobs_series_run_at_set", "idx_jobs_status_submitted_id", "idx_jobs_submitted_at"}
			if diff := cmp.Diff(want, jobIndexes(t, db)); diff != "" {
				t.Errorf("indexes of jobs (-want +got):\n%s", diff)
			}

			at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			series := "task-1"
			row := func(id string, series *string, runAt *time.Time) error {
				return db.Create(&job.Job{ID: id, Kind: "k", Status: job.StatusScheduled, SubmittedAt: at, Attempt: 1, Series: series, RunAt: runAt}).Error
			}
			if err := row("01K00000000000000000000001", &series, &at); err != nil {
				t.Fatal(err)
			}
			if err := row("01K00000000000000000000002", &series, &at); err == nil {
				t.Error("a second job for the same series and run_at was stored")
			}
			for _, id := range []string{"01K00000000000000000000003", "01K00000000000000000000004"} {
				if err := row(id, nil, nil); err != nil {
					t.Errorf("job without a series: %v", err)
				}
			}
		})
	}
}
