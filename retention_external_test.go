package chapkit_test

import (
	"context"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func retentionApp(t *testing.T, r chapkit.RetentionConfig, reg *registry.Registry) *chapkit.App {
	t.Helper()
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "retention"}).
		WithDatabase(apptest.DBTarget(t)).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 2, Retention: &r}).
		WithTasks(reg).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Shutdown(context.Background()) })
	return app
}

func runTask(t *testing.T, app *chapkit.App, command string, n int) []string {
	t.Helper()
	ctx := t.Context()
	tk, err := app.Tasks().Create(ctx, task.In{Command: command, TaskType: task.TypeShell, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range n {
		id, err := app.Tasks().Execute(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func counts(t *testing.T, app *chapkit.App) (jobs, artifacts int64) {
	t.Helper()
	app.DB().Model(&job.Job{}).Count(&jobs)
	app.DB().Model(&artifact.Artifact{}).Count(&artifacts)
	return jobs, artifacts
}

func TestRetentionMaxCount(t *testing.T) {
	reg := registry.New()
	release := make(chan struct{})
	registry.MustRegister(reg, "block", func(ctx context.Context, _ struct{}) (int, error) { <-release; return 1, nil })
	app := retentionApp(t, chapkit.RetentionConfig{MaxCount: 2, Interval: time.Hour, BatchSize: 2}, reg)
	ctx := t.Context()
	for _, id := range runTask(t, app, "echo kept or pruned", 5) {
		if _, err := app.Scheduler().Wait(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	blocked, err := app.Tasks().Create(ctx, task.In{Command: "block", TaskType: task.TypePython, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	running, _ := app.Tasks().Execute(ctx, blocked.ID)

	n, err := app.Prune(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Prune() = %d, %v; want 3 removed", n, err)
	}
	jobs, arts := counts(t, app)
	if jobs != 3 || arts != 2 {
		t.Fatalf("after pruning: %d jobs, %d artifacts; want 3 (2 finished + 1 unfinished) and 2", jobs, arts)
	}
	if _, err := app.Scheduler().Get(ctx, running); err != nil {
		t.Fatalf("unfinished job was pruned: %v", err)
	}
	close(release)
	if _, err := app.Scheduler().Wait(ctx, running); err != nil {
		t.Fatal(err)
	}
}

func TestRetentionMaxAgeInBackground(t *testing.T) {
	app := retentionApp(t, chapkit.RetentionConfig{MaxAge: time.Nanosecond, Interval: 10 * time.Millisecond}, registry.New())
	ctx := t.Context()
	for _, id := range runTask(t, app, "true", 4) {
		if _, err := app.Scheduler().Wait(ctx, id); err != nil && err != job.ErrNotFound {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 10*time.Second, "background pruning to remove every job and artifact", func() bool {
		jobs, arts := counts(t, app)
		return jobs == 0 && arts == 0
	})
}

func TestRetentionOffPrunesNothing(t *testing.T) {
	app := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "no retention"}).
		WithDatabase(apptest.DBTarget(t)).
		WithArtifacts(artifact.Hierarchy{Name: "x"}).WithJobs(chapkit.JobsConfig{}).WithTasks(registry.New()).MustBuild()
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer app.Shutdown(context.Background())
	for _, id := range runTask(t, app, "true", 2) {
		app.Scheduler().Wait(t.Context(), id)
	}
	if n, err := app.Prune(t.Context()); n != 0 || err != nil {
		t.Fatalf("Prune() without a policy = %d, %v", n, err)
	}
}
