package job

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/pgtest"
)

// nextChange returns the next change of c, failing the test after a
// deadline.
func nextChange(t *testing.T, c *Changes) Change {
	t.Helper()
	select {
	case ch := <-c.C():
		return ch
	case <-time.After(10 * time.Second):
		t.Fatal("no change within 10 s")
		return Change{}
	}
}

// inOrder reports whether got is a subsequence of want.
func inOrder(got []string, want ...string) bool {
	i := 0
	for _, g := range got {
		for i < len(want) && want[i] != g {
			i++
		}
		if i == len(want) {
			return false
		}
		i++
	}
	return true
}

// statesOf reads changes until job id reaches a terminal status or is
// deleted, and returns the statuses seen for it ("deleted" for deletion).
func statesOf(t *testing.T, c *Changes, id string) []string {
	t.Helper()
	var seen []string
	for {
		ch := nextChange(t, c)
		if ch.ID != id {
			continue
		}
		if ch.Deleted {
			return append(seen, "deleted")
		}
		seen = append(seen, string(ch.Job.Status))
		if ch.Job.Status.Terminal() {
			return seen
		}
	}
}

func TestSubscribeAll(t *testing.T) {
	g := newGate()
	hold := make(chan struct{})
	b := setup(t, Config{MaxConcurrency: 1}, map[string]Handler{
		"gated": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			select {
			case <-g.release:
			case <-ctx.Done():
			}
			return nil, nil
		},
		"held": func(ctx context.Context, r *Run) (any, error) {
			select {
			case <-hold:
			case <-ctx.Done():
			}
			return nil, nil
		},
		"quick": func(ctx context.Context, r *Run) (any, error) { return nil, nil },
	})

	t.Run("every job's submission, start and end", func(t *testing.T) {
		c, stop := b.s.SubscribeAll()
		defer stop()
		id := submit(t, b.s, "held")
		var seen []string
		for len(seen) < 2 {
			if ch := nextChange(t, c); ch.ID == id {
				seen = append(seen, string(ch.Job.Status))
			}
		}
		hold <- struct{}{}
		seen = append(seen, statesOf(t, c, id)...)
		if diff := cmp.Diff([]string{"pending", "running", "completed"}, seen); diff != "" {
			t.Errorf("states mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("a short job's states arrive in order", func(t *testing.T) {
		c, stop := b.s.SubscribeAll()
		defer stop()
		for range 20 {
			id := submit(t, b.s, "quick")
			got := statesOf(t, c, id)
			// Its submission or start may be learned after its end: then
			// it is left out, never sent after the end.
			if !inOrder(got, "pending", "running", "completed") || got[len(got)-1] != "completed" {
				t.Fatalf("states of %s = %v, want some of pending, running, then completed", id, got)
			}
		}
	})

	t.Run("a deletion", func(t *testing.T) {
		id := wait(t, b.s, submit(t, b.s, "quick")).ID
		c, stop := b.s.SubscribeAll()
		defer stop()
		if err := b.s.Delete(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		if got := nextChange(t, c); got.ID != id || !got.Deleted {
			t.Errorf("change = %+v, want the deletion of %s", got, id)
		}
	})

	t.Run("a reader that falls behind loses changes and is told how many", func(t *testing.T) {
		blocker := submit(t, b.s, "gated")
		<-g.started
		c, stop := b.s.SubscribeAll()
		defer stop()
		extra := 20
		for range ChangeBuffer + extra {
			submit(t, b.s, "quick") // each is one pending change, queued behind the blocker
		}
		select {
		case <-c.LostC():
		case <-time.After(10 * time.Second):
			t.Fatal("no loss signalled")
		}
		if got := c.Lost(); got != int64(extra) {
			t.Errorf("Lost() = %d, want %d", got, extra)
		}
		if got := c.Lost(); got != 0 {
			t.Errorf("Lost() again = %d, want 0 (the count resets)", got)
		}
		if got := len(c.C()); got != ChangeBuffer {
			t.Errorf("queued changes = %d, want the buffer's %d", got, ChangeBuffer)
		}
		close(g.release)
		wait(t, b.s, blocker)
	})
}

// TestSubscribeAllAcrossNodes: a node that runs nothing sees the jobs
// another node submits and runs, through PostgreSQL notifications.
func TestSubscribeAllAcrossNodes(t *testing.T) {
	if !pgtest.OnPostgres() {
		t.Skip("nodes hear each other's changes through PostgreSQL notifications")
	}
	db := openDB(t)
	release := make(chan struct{})
	started := make(chan string, 4)
	runner := startNode(t, db, Config{MaxConcurrency: 1}, func(ctx context.Context, r *Run) (any, error) {
		started <- r.Job.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	watcher := newSched(db, Config{})
	if err := watcher.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watcher.Stop(context.Background()) })
	c, stop := watcher.SubscribeAll()
	defer stop()

	first := submit(t, runner, "count")
	<-started
	second := submit(t, runner, "count") // waits: the runner's only slot is taken
	seen := map[string][]string{}
	for len(seen[second]) == 0 {
		ch := nextChange(t, c)
		seen[ch.ID] = append(seen[ch.ID], string(ch.Job.Status))
	}
	if diff := cmp.Diff([]string{"pending"}, seen[second]); diff != "" {
		t.Errorf("second job before release (-want +got):\n%s", diff)
	}
	close(release)
	for _, id := range []string{first, second} {
		got := append(seen[id], statesOf(t, c, id)...)
		if got[len(got)-1] != "completed" {
			t.Errorf("states of %s = %v, want completed last", id, got)
		}
	}
	if err := runner.Delete(t.Context(), first); err != nil {
		t.Fatal(err)
	}
	if got := statesOf(t, c, first); !cmp.Equal(got, []string{"deleted"}) {
		t.Errorf("after delete: %v, want [deleted]", got)
	}
}

// TestClaimTellsOtherNodes: a job that waited and is then claimed is seen
// running by a service-wide subscriber on another node through the
// claim's own notification, not by that node's poll (set to an hour).
func TestClaimTellsOtherNodes(t *testing.T) {
	if !pgtest.OnPostgres() {
		t.Skip("nodes hear each other's changes through PostgreSQL notifications")
	}
	db := openDB(t)
	release := make(chan struct{})
	started := make(chan string, 2)
	runner := startNode(t, db, Config{MaxConcurrency: 1}, func(ctx context.Context, r *Run) (any, error) {
		started <- r.Job.ID
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	watcher := newSched(db, Config{PollInterval: time.Hour})
	if err := watcher.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = watcher.Stop(context.Background()) })
	c, stop := watcher.SubscribeAll()
	defer stop()

	submit(t, runner, "count")
	<-started
	second := submit(t, runner, "count") // waits for the only slot, then is claimed
	release <- struct{}{}                // the first job ends; the second is claimed
	for {
		ch := nextChange(t, c)
		if ch.ID == second && ch.Job != nil && ch.Job.Status == StatusRunning {
			break
		}
	}
	close(release)
}
