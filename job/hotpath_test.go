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

// TestCompleteJobsCompareAndSet completes small and large batches (row
// by row and with one joined statement on SQLite): only rows still running
// on this node in the same attempt change, and exactly those are reported.
func TestCompleteJobsCompareAndSet(t *testing.T) {
	b := setup(t, Config{}, map[string]Handler{"noop": func(ctx context.Context, r *Run) (any, error) { return nil, nil }})
	ctx := t.Context()
	node, other := b.s.NodeID(), wire.NewID()
	for _, n := range []int{3, maxRowByRow + 4} {
		now := wire.Now()
		jobs := make([]*Job, n)
		for i := range jobs {
			jobs[i] = &Job{ID: wire.NewID(), Kind: "elsewhere", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, Node: &node, Attempt: 1}
		}
		jobs[0].Status, jobs[0].StartedAt, jobs[0].Node = StatusCanceled, nil, nil // cancelled meanwhile
		jobs[1].Node = &other                                                      // rescued by another node
		jobs[2].Attempt = 2                                                        // a later attempt
		if err := b.s.insertJobs(ctx, poolOf(b.db), jobs); err != nil {
			t.Fatal(err)
		}
		rows := make([]completion, n)
		want := map[string]bool{}
		for i, j := range jobs {
			art := wire.NewID()
			rows[i] = completion{id: j.ID, attempt: 1, at: now, artifact: &art}
			if i > 2 {
				want[j.ID] = true
			}
		}
		got, err := b.s.completeJobs(ctx, poolOf(b.db), rows)
		if err != nil {
			t.Fatalf("%d rows: %v", n, err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%d rows: completed ids (-want +got):\n%s", n, diff)
		}
		for i, j := range jobs {
			stored, err := b.s.Get(ctx, j.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus := j.Status
			var wantArt *string
			if i > 2 {
				wantStatus, wantArt = StatusCompleted, rows[i].artifact
			}
			if stored.Status != wantStatus || !cmp.Equal(stored.ArtifactID, wantArt) {
				t.Errorf("%d rows: job %d stored %s with artifact %v, want %s with %v", n, i, stored.Status, stored.ArtifactID, wantStatus, wantArt)
			}
		}
	}
}
