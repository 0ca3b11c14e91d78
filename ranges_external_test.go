package chapkit_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// TestBuildRejectsOutOfRangeNumbers: every number the builder takes is
// range-checked, and the error names the field and the allowed range.
func TestBuildRejectsOutOfRangeNumbers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		jobs chapkit.JobsConfig
		task chapkit.TasksConfig
		lim  chapkit.Limits
		want string // the error must contain it
	}{
		{"negative MaxConcurrency", chapkit.JobsConfig{MaxConcurrency: -1}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.MaxConcurrency is -1; allowed: 0 (unlimited) or more"},
		{"negative MaxPending", chapkit.JobsConfig{MaxPending: -5}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.MaxPending is -5; allowed: 0 (10,000) or more"},
		{"negative DrainTimeout", chapkit.JobsConfig{DrainTimeout: -time.Second}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.DrainTimeout is -1s; allowed: 0 (30s) or a positive duration"},
		{"negative RetryInterrupted", chapkit.JobsConfig{RetryInterrupted: -2}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.RetryInterrupted is -2; allowed: 0 (no retry) or more"},
		{"negative AbandonAfter", chapkit.JobsConfig{AbandonAfter: -time.Millisecond}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.AbandonAfter is -1ms; allowed: 0 (10s) or a positive duration"},
		{"negative Scheduler.MaxConcurrency", chapkit.JobsConfig{Scheduler: jobConfig(-3)}, chapkit.TasksConfig{}, chapkit.Limits{},
			"JobsConfig.Scheduler.MaxConcurrency is -3; allowed: 0 (unlimited) or more"},
		{"negative retention MaxAge", chapkit.JobsConfig{Retention: &chapkit.RetentionConfig{MaxAge: -time.Hour}}, chapkit.TasksConfig{}, chapkit.Limits{},
			"RetentionConfig.MaxAge is -1h0m0s; allowed: 0 (no limit) or a positive duration"},
		{"negative retention MaxCount", chapkit.JobsConfig{Retention: &chapkit.RetentionConfig{MaxCount: -1}}, chapkit.TasksConfig{}, chapkit.Limits{},
			"RetentionConfig.MaxCount is -1; allowed: 0 (no limit) or more"},
		{"negative retention Interval", chapkit.JobsConfig{Retention: &chapkit.RetentionConfig{Interval: -time.Minute}}, chapkit.TasksConfig{}, chapkit.Limits{},
			"RetentionConfig.Interval is -1m0s; allowed: 0 (1m0s) or a positive duration"},
		{"negative retention BatchSize", chapkit.JobsConfig{Retention: &chapkit.RetentionConfig{BatchSize: -1}}, chapkit.TasksConfig{}, chapkit.Limits{},
			"RetentionConfig.BatchSize is -1; allowed: 0 (500) or more"},
		{"negative MaxOutput", chapkit.JobsConfig{}, chapkit.TasksConfig{MaxOutput: -1}, chapkit.Limits{},
			"TasksConfig.MaxOutput is -1; allowed: 0 (1 MiB) up to 1073741824 bytes"},
		{"huge MaxOutput", chapkit.JobsConfig{}, chapkit.TasksConfig{MaxOutput: 1 << 40}, chapkit.Limits{},
			"TasksConfig.MaxOutput is 1099511627776 bytes; allowed: 0 (1 MiB) up to 1073741824 bytes"},
		{"negative DefaultTimeout", chapkit.JobsConfig{}, chapkit.TasksConfig{DefaultTimeout: -time.Second}, chapkit.Limits{},
			"TasksConfig.DefaultTimeout is -1s; allowed: 0 (no timeout) or a positive duration"},
		{"DefaultTimeout above 30 days", chapkit.JobsConfig{}, chapkit.TasksConfig{DefaultTimeout: task.MaxTimeoutSeconds*time.Second + time.Second}, chapkit.Limits{},
			"TasksConfig.DefaultTimeout is 720h0m1s; allowed: 0 (no timeout) up to 720h0m0s"},
		{"negative MaxBodyBytes", chapkit.JobsConfig{}, chapkit.TasksConfig{}, chapkit.Limits{MaxBodyBytes: -1},
			"Limits.MaxBodyBytes is -1; allowed: 0 (1 MiB) up to 1073741824 bytes"},
		{"MaxBodyBytes at the top of int64", chapkit.JobsConfig{}, chapkit.TasksConfig{}, chapkit.Limits{MaxBodyBytes: 1<<63 - 1},
			"Limits.MaxBodyBytes is 9223372036854775807 bytes; allowed: 0 (1 MiB) up to 1073741824 bytes"},
		{"negative MaxStreams", chapkit.JobsConfig{}, chapkit.TasksConfig{}, chapkit.Limits{MaxStreams: -1},
			"Limits.MaxStreams is -1; allowed: 0 (1,000) or more"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
				WithDatabase(filepath.Join(t.TempDir(), "test.db")).
				WithArtifacts(testHierarchy).WithJobs(tc.jobs).WithTasks(registry.New(), tc.task).WithLimits(tc.lim)
			app, err := b.Build()
			if err == nil || app != nil {
				t.Fatalf("Build() = %v, %v; want an error containing %q", app, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build() error = %q, want it to contain %q", err, tc.want)
			}
		})
	}

	t.Run("zero and the maximums are accepted", func(t *testing.T) {
		t.Parallel()
		b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
			WithDatabase(filepath.Join(t.TempDir(), "test.db")).
			WithArtifacts(testHierarchy).
			WithJobs(chapkit.JobsConfig{Retention: &chapkit.RetentionConfig{}}).
			WithTasks(registry.New(), chapkit.TasksConfig{MaxOutput: 1 << 30, DefaultTimeout: task.MaxTimeoutSeconds * time.Second}).
			WithLimits(chapkit.Limits{MaxBodyBytes: 1 << 30})
		if _, err := b.Build(); err != nil {
			t.Errorf("Build() error = %v, want none", err)
		}
	})
}

func jobConfig(maxConcurrency int) job.Config { return job.Config{MaxConcurrency: maxConcurrency} }
