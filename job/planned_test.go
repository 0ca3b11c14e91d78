package job

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestPlanOncePerTick: three nodes on one database plan and promote the
// same ticks at the same moments; each tick is stored once, promoted
// once and run once. Runs on SQLite and, through TestPostgres, on
// PostgreSQL.
func TestPlanOncePerTick(t *testing.T) {
	db := openDB(t)
	var runs sync.Map // job id → *atomic.Int32
	done := make(chan string, 100)
	h := func(_ context.Context, r *Run) (any, error) {
		n, _ := runs.LoadOrStore(r.Job.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		done <- r.Job.ID
		return nil, nil
	}
	cfg := Config{PollInterval: 20 * time.Millisecond}
	nodes := []*Scheduler{startNode(t, db, cfg, h), startNode(t, db, cfg, h), startNode(t, db, cfg, h)}
	base := time.Now().UTC().Truncate(time.Second)
	const ticks = 5
	for i := range ticks {
		at := base.Add(time.Duration(i) * time.Second)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := n.Plan(context.Background(), "count", nil, "series-1", at); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	var waiting []Job
	if err := db.Where("status = ?", StatusScheduled).Order("run_at").Find(&waiting).Error; err != nil {
		t.Fatal(err)
	}
	if len(waiting) != ticks {
		t.Fatalf("planned %d rows for %d ticks", len(waiting), ticks)
	}
	// Everything is due: all nodes promote all rows at once.
	var promoted atomic.Int32
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due, err := n.Due(context.Background(), base.Add(time.Hour), 100)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range due {
				ok, err := n.Promote(context.Background(), &due[i])
				if err != nil {
					t.Error(err)
				}
				if ok {
					promoted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if promoted.Load() != ticks {
		t.Fatalf("promoted %d times for %d ticks", promoted.Load(), ticks)
	}
	for range ticks {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("promoted ticks did not all run")
		}
	}
	for _, w := range waiting {
		j, err := nodes[0].Wait(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := runs.Load(w.ID)
		if j.Status != StatusCompleted || n == nil || n.(*atomic.Int32).Load() != 1 || *j.Trigger != TriggerSchedule {
			t.Errorf("tick %s: status %s", w.RunAt, j.Status)
		}
	}
	// A skipped or cancelled row is never promoted.
	at := base.Add(time.Minute)
	if ok, err := nodes[1].Plan(t.Context(), "count", nil, "series-1", at); err != nil || !ok {
		t.Fatalf("plan: %v %v", ok, err)
	}
	due, err := nodes[1].Due(t.Context(), at, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due: %v %d", err, len(due))
	}
	if ok, err := nodes[2].Skip(t.Context(), &due[0], "test"); err != nil || !ok {
		t.Fatalf("skip: %v %v", ok, err)
	}
	if ok, err := nodes[0].Promote(t.Context(), &due[0]); err != nil || ok {
		t.Fatalf("promote after skip: %v %v", ok, err)
	}
	got, err := nodes[0].Get(t.Context(), due[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("skipped: test", *got.Error); diff != "" || !Skipped(got) {
		t.Errorf("skipped row error (-want +got):\n%s", diff)
	}
	// The unfiltered list never shows waiting rows.
	if ok, err := nodes[1].Plan(t.Context(), "count", nil, "series-1", base.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("plan: %v %v", ok, err)
	}
	all, err := nodes[0].List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.Status == StatusScheduled {
			t.Errorf("unfiltered list shows %s", j.ID)
		}
	}
}
