package job

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/reqid"
)

// unstarted returns a scheduler with handlers registered but not started,
// stopped when the test ends.
func unstarted(t *testing.T, cfg Config, handlers map[string]Handler) *bundle {
	t.Helper()
	db := openDB(t)
	s := newSched(db, cfg)
	for k, h := range handlers {
		if err := s.Handle(k, h); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return &bundle{db: db, s: s}
}

// TestSubmitBeforeStart submits jobs, one by one and in a batch, to a
// scheduler that is not started: they are stored pending on no node with
// the submitting request's id, nothing runs them, and Start runs them all
// in submission order.
func TestSubmitBeforeStart(t *testing.T) {
	var mu sync.Mutex
	var order []string
	b := unstarted(t, Config{MaxConcurrency: 1}, map[string]Handler{
		"echo": func(ctx context.Context, r *Run) (any, error) {
			mu.Lock()
			order = append(order, string(r.Job.Args))
			mu.Unlock()
			return nil, nil
		},
	})
	ctx := reqid.With(t.Context(), "req-early")
	var ids, want []string
	for i := range 3 {
		id, err := b.s.Submit(ctx, "echo", i)
		if err != nil {
			t.Fatalf("Submit before Start: %v", err)
		}
		ids, want = append(ids, id), append(want, fmt.Sprint(i))
	}
	var batch []any
	for i := 3; i < 3+maxInsertRows+10; i++ {
		batch, want = append(batch, i), append(want, fmt.Sprint(i))
	}
	more, err := b.s.SubmitMany(ctx, "echo", batch)
	if err != nil {
		t.Fatalf("SubmitMany before Start: %v", err)
	}
	if len(more) != len(batch) {
		t.Fatalf("SubmitMany returned %d ids, want %d", len(more), len(batch))
	}
	ids = append(ids, more...)
	for i, id := range ids {
		j, err := b.s.Get(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != StatusPending || j.Node != nil || j.StartedAt != nil || string(j.Args) != want[i] || deref(j.RequestID) != "req-early" {
			t.Fatalf("job %d before Start = %s on %q, args %s, request %q; want pending on no node, args %s, request req-early",
				i, j.Status, deref(j.Node), j.Args, deref(j.RequestID), want[i])
		}
	}
	if got := countJobs(t, b.db); got != int64(len(want)) {
		t.Fatalf("%d jobs stored, want %d", got, len(want))
	}

	if err := b.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if j := wait(t, b.s, id); j.Status != StatusCompleted {
			t.Errorf("job %s = %s, want completed", id, j.Status)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, order); diff != "" {
		t.Errorf("order the jobs ran in (-submitted +ran):\n%s", diff)
	}
}

// failInsertsOf makes every insert of a job whose arguments are args fail.
func failInsertsOf(t *testing.T, db *gorm.DB, args string) {
	t.Helper()
	stmts := []string{fmt.Sprintf(`CREATE TRIGGER refuse BEFORE INSERT ON jobs WHEN CAST(NEW.args AS TEXT) = '%s' BEGIN SELECT RAISE(ABORT, 'refused'); END`, args)}
	if pgtest.OnPostgres() {
		stmts = []string{
			fmt.Sprintf(`CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.args::text = '%s' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$`, args),
			`CREATE TRIGGER refuse BEFORE INSERT ON jobs FOR EACH ROW EXECUTE FUNCTION refuse()`,
		}
	}
	for _, q := range stmts {
		if err := db.Exec(q).Error; err != nil {
			t.Fatal(err)
		}
	}
}

// TestSubmitManyBeforeStartAllOrNothing checks that a batch submitted
// before Start is stored whole or not at all: past the pending bound, with
// arguments that cannot be encoded, of a kind without handler, or when
// one row past the first statement's rows cannot be stored.
func TestSubmitManyBeforeStartAllOrNothing(t *testing.T) {
	b := unstarted(t, Config{MaxPending: 2*maxInsertRows + 10}, map[string]Handler{
		"ok": func(ctx context.Context, r *Run) (any, error) { return nil, nil },
	})
	failInsertsOf(t, b.db, `"bad"`)
	tooMany := make([]any, 2*maxInsertRows+11)
	if _, err := b.s.SubmitMany(t.Context(), "ok", tooMany); !errors.Is(err, ErrQueueFull) {
		t.Errorf("SubmitMany past the bound before Start = %v, want ErrQueueFull", err)
	}
	if _, err := b.s.SubmitMany(t.Context(), "ok", []any{1, make(chan int)}); err == nil {
		t.Error("SubmitMany with arguments that cannot be encoded succeeded")
	}
	if _, err := b.s.SubmitMany(t.Context(), "none", []any{1}); err == nil {
		t.Error("SubmitMany of a kind without handler succeeded")
	}
	batch := make([]any, maxInsertRows+20)
	for i := range batch {
		batch[i] = "good"
	}
	batch[maxInsertRows+10] = "bad" // in the second INSERT
	if _, err := b.s.SubmitMany(t.Context(), "ok", batch); err == nil {
		t.Error("SubmitMany with a row the database refuses succeeded")
	}
	if got := countJobs(t, b.db); got != 0 {
		t.Errorf("%d jobs stored after refused batches, want none", got)
	}
}

// TestQueueFullBeforeStart fills the pending bound before Start, counting
// jobs stored by another scheduler too, and checks the refusals and that
// every job stored then runs.
func TestQueueFullBeforeStart(t *testing.T) {
	b := unstarted(t, Config{MaxPending: 4}, map[string]Handler{
		"ok": func(ctx context.Context, r *Run) (any, error) { return nil, nil },
	})
	other := newSched(b.db, Config{})
	if err := other.Handle("ok", func(ctx context.Context, r *Run) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Stop(context.Background()) })
	first, err := other.SubmitMany(t.Context(), "ok", []any{1, 2})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := b.s.SubmitMany(t.Context(), "ok", []any{3, 4})
	if err != nil {
		t.Fatalf("SubmitMany up to the bound before Start = %v", err)
	}
	if _, err := b.s.Submit(t.Context(), "ok", 5); !errors.Is(err, ErrQueueFull) {
		t.Errorf("Submit past the bound before Start = %v, want ErrQueueFull", err)
	}
	if _, err := b.s.SubmitMany(t.Context(), "ok", []any{5}); !errors.Is(err, ErrQueueFull) {
		t.Errorf("SubmitMany past the bound before Start = %v, want ErrQueueFull", err)
	}
	if got := countJobs(t, b.db); got != 4 {
		t.Errorf("%d jobs stored, want 4", got)
	}
	if err := b.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, id := range append(first, ids...) {
		if j := wait(t, b.s, id); j.Status != StatusCompleted {
			t.Errorf("job %s = %s, want completed", id, j.Status)
		}
	}
}

// TestSubmitAfterStop checks that Stop closes a scheduler to submissions,
// whether it was started or not, and that one stopped before Start cannot
// be started and leaves the jobs submitted before pending.
func TestSubmitAfterStop(t *testing.T) {
	handlers := map[string]Handler{"ok": func(ctx context.Context, r *Run) (any, error) { return nil, nil }}
	started := setup(t, Config{}, handlers)
	never := unstarted(t, Config{}, handlers)
	early, err := never.s.Submit(t.Context(), "ok", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*Scheduler{"started": started.s, "never started": never.s} {
		if err := s.Stop(t.Context()); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Submit(t.Context(), "ok", nil); !errors.Is(err, ErrDraining) {
			t.Errorf("Submit after Stop (%s) = %v, want ErrDraining", name, err)
		}
		if _, err := s.SubmitMany(t.Context(), "ok", []any{1, 2}); !errors.Is(err, ErrDraining) {
			t.Errorf("SubmitMany after Stop (%s) = %v, want ErrDraining", name, err)
		}
	}
	if err := never.s.Start(t.Context()); err == nil {
		t.Error("Start after Stop succeeded")
	}
	if j, err := never.s.Get(t.Context(), early); err != nil || j.Status != StatusPending {
		t.Errorf("job submitted before a Stop without Start = %+v (%v), want pending", j, err)
	}
	if got := countJobs(t, never.db); got != 1 {
		t.Errorf("%d jobs stored by the scheduler stopped before Start, want 1", got)
	}
}

// TestSubmitWhileStarting submits from several goroutines while Start
// runs: each submission lands either before Start's switch or after it,
// and every job it stored runs once.
func TestSubmitWhileStarting(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	b := unstarted(t, Config{MaxConcurrency: 4}, map[string]Handler{
		"ok": func(ctx context.Context, r *Run) (any, error) {
			mu.Lock()
			runs[r.Job.ID]++
			mu.Unlock()
			return nil, nil
		},
	})
	const workers, each = 4, 10
	idc := make(chan []string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var ids []string
			for i := range each {
				var got []string
				var err error
				if i%2 == 0 {
					var id string
					id, err = b.s.Submit(t.Context(), "ok", w)
					got = []string{id}
				} else {
					got, err = b.s.SubmitMany(t.Context(), "ok", []any{w, w})
				}
				if err != nil {
					t.Errorf("submit while starting: %v", err)
					break
				}
				ids = append(ids, got...)
			}
			idc <- ids
		})
	}
	if err := b.s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(idc)
	want := map[string]int{}
	for ids := range idc {
		for _, id := range ids {
			if j := wait(t, b.s, id); j.Status != StatusCompleted {
				t.Errorf("job %s = %s, want completed", id, j.Status)
			}
			want[id] = 1
		}
	}
	if len(want) != workers*each*3/2 {
		t.Errorf("%d distinct ids, want %d", len(want), workers*each*3/2)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, runs); diff != "" {
		t.Errorf("runs per job (-want +got):\n%s", diff)
	}
}
