package job

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// TestWaitAfterEndPublishedWhileSlotHeld waits for a job whose completion
// was published while its slot is still taken (a detached call keeps it):
// Wait must read the job rather than wait for an event already sent.
func TestWaitAfterEndPublishedWhileSlotHeld(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	b := setup(t, Config{AbandonAfter: time.Minute}, map[string]Handler{
		"detach": func(ctx context.Context, r *Run) (any, error) {
			r.Detach(hold)
			return nil, nil
		},
	})
	id := submit(t, b.s, "detach")
	// A first waiter sees the completion, so the job's subscribers were
	// told of it before the second waiter subscribes.
	if j := wait(t, b.s, id); j.Status != StatusCompleted {
		t.Fatalf("first Wait: status %s, want completed", j.Status)
	}
	_, stop := b.s.Subscribe(id) // keeps the job's subscriber group alive
	defer stop()
	if _, running := b.s.Counts(); running != 1 {
		t.Fatalf("running = %d, want the detached call to hold its slot", running)
	}
	j := wait(t, b.s, id)
	if diff := cmp.Diff(StatusCompleted, j.Status); diff != "" {
		t.Errorf("second Wait status (-want +got):\n%s", diff)
	}
}

// TestJobStoredBehindTheSchedulerRunsAfterDrain stores a pending job the
// way another process would, without telling this scheduler, after its
// last claim found nothing: the poll interval must still bring it to run.
func TestJobStoredBehindTheSchedulerRunsAfterDrain(t *testing.T) {
	b := setup(t, Config{PollInterval: 50 * time.Millisecond}, map[string]Handler{
		"noop": func(ctx context.Context, r *Run) (any, error) { return nil, nil },
	})
	// Run one job so that a slot is released with nothing pending.
	if j := wait(t, b.s, submit(t, b.s, "noop")); j.Status != StatusCompleted {
		t.Fatalf("first job: status %s, want completed", j.Status)
	}
	j := &Job{ID: wire.NewID(), Kind: "noop", Status: StatusPending, SubmittedAt: wire.Now(), Attempt: 1}
	if err := b.s.insertJobs(t.Context(), poolOf(b.db), []*Job{j}); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, b.s, j.ID); got.Status != StatusCompleted {
		t.Errorf("job stored behind the scheduler: status %s, want completed", got.Status)
	}
}
