package chapkit_test

import (
	"context"
	"errors"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// TestCancelRightAfterStart cancels jobs at every point of their start-up
// (queued, claiming, recording the process group): a cancel never fails
// with a storage error, and every job ends canceled.
func TestCancelRightAfterStart(t *testing.T) {
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "cancel"}).
		WithDatabase(apptest.DBTarget(t)).
		WithArtifacts(artifact.Hierarchy{Name: "x"}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 4}).
		WithTasks(registry.New()).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := app.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer app.Shutdown(context.Background())
	tk, err := app.Tasks().Create(ctx, task.In{Command: "sleep 876543", TaskType: task.TypeShell, Enabled: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		id, err := app.Tasks().Execute(ctx, tk.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Spread the cancels over the start-up: some right away, some
		// after the job was seen running.
		if i%2 == 1 {
			events, unsubscribe := app.Scheduler().Subscribe(id)
			if j, _ := app.Scheduler().Get(ctx, id); j.Status == job.StatusPending {
				for ev := range events {
					if ev.Job != nil && ev.Job.Status != job.StatusPending {
						break
					}
				}
			}
			unsubscribe()
		}
		j, err := app.Scheduler().Cancel(ctx, id)
		var fe *job.FinishedError
		if errors.As(err, &fe) {
			t.Fatalf("iteration %d: job ended %s before the cancel", i, fe.Status)
		}
		if err != nil {
			t.Fatalf("iteration %d: Cancel: %v", i, err)
		}
		if j.Status != job.StatusCanceled {
			t.Fatalf("iteration %d: job %s after Cancel", i, j.Status)
		}
	}
}
