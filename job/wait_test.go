package job

import (
	"context"
	"testing"
	"time"
)

// cancelElsewhere starts a job on one node whose handler, once its context
// ends, signals stopped and then takes its time to return, and cancels the
// job through a second node. It returns the running node and the job id.
func cancelElsewhere(t *testing.T) (runner *Scheduler, id string, stopped <-chan struct{}) {
	t.Helper()
	db := openDB(t)
	started := make(chan string, 1)
	stop := make(chan struct{}, 1)
	release := make(chan struct{})
	runner = startNode(t, db, Config{PollInterval: 50 * time.Millisecond, AbandonAfter: time.Minute}, func(ctx context.Context, r *Run) (any, error) {
		started <- r.Job.ID
		<-ctx.Done()
		stop <- struct{}{}
		<-release // slow to wind down
		return nil, nil
	})
	t.Cleanup(func() { close(release) })
	other := newSched(db, Config{PollInterval: 50 * time.Millisecond})
	if err := other.Handle("other", func(ctx context.Context, r *Run) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := other.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	id, err := runner.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start within 10 s")
	}
	if _, err := other.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	return runner, id, stop
}

// waitCanceled runs Wait on the node and wants the cancellation within 3 s.
func waitCanceled(t *testing.T, runner *Scheduler, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	j, err := runner.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait on the running node: %v (the job is cancelled in the database)", err)
	}
	if j.Status != StatusCanceled {
		t.Fatalf("Wait returned %s, want canceled", j.Status)
	}
}

// TestWaitOnJobCancelledElsewhere: a job running on one node is cancelled
// through another while its handler takes its time to return; a Wait made
// on the running node after it stopped the job reports the cancellation at
// once, without waiting for the handler.
func TestWaitOnJobCancelledElsewhere(t *testing.T) {
	runner, id, stopped := cancelElsewhere(t)
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("the running node did not stop the cancelled job within 5 s")
	}
	waitCanceled(t, runner, id)
}

// TestWaitRightAfterCancelElsewhere: a Wait made on the running node just
// after another node cancelled its job, before the running node noticed,
// reports the cancellation within a poll interval or so, although the
// handler does not return.
func TestWaitRightAfterCancelElsewhere(t *testing.T) {
	runner, id, _ := cancelElsewhere(t)
	waitCanceled(t, runner, id)
}
