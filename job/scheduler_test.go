package job

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/wire"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { pgtest.Stop() }))
}

type bundle struct {
	db *gorm.DB
	s  *Scheduler
}

// gate lets a test hold jobs in their handler until it opens.
type gate struct {
	started chan string
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan string, 100), release: make(chan struct{})} }

func setup(t *testing.T, cfg Config, handlers map[string]Handler) *bundle {
	t.Helper()
	db := openDB(t)
	s := newSched(db, cfg)
	for k, h := range handlers {
		if err := s.Handle(k, h); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return &bundle{db: db, s: s}
}

func wait(t *testing.T, s *Scheduler, id string) *Job {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	j, err := s.Wait(ctx, id)
	if err != nil {
		t.Fatalf("Wait(%s): %v", id, err)
	}
	return j
}

func submit(t *testing.T, s *Scheduler, kind string) string {
	t.Helper()
	id, err := s.Submit(t.Context(), kind, nil)
	if err != nil {
		t.Fatalf("Submit(%s): %v", kind, err)
	}
	return id
}

func TestCompleteWithULIDResult(t *testing.T) {
	artifact := wire.NewID()
	b := setup(t, Config{}, map[string]Handler{
		"ulid":  func(ctx context.Context, r *Run) (any, error) { return artifact, nil },
		"plain": func(ctx context.Context, r *Run) (any, error) { return 42, nil },
	})
	j := wait(t, b.s, submit(t, b.s, "ulid"))
	if j.Status != StatusCompleted || j.ArtifactID == nil || *j.ArtifactID != artifact {
		t.Fatalf("job = %+v, want completed with artifact %s", j, artifact)
	}
	if j.StartedAt == nil || j.FinishedAt == nil || j.Error != nil {
		t.Fatalf("job = %+v, want started/finished set and no error", j)
	}
	j = wait(t, b.s, submit(t, b.s, "plain"))
	if j.Status != StatusCompleted || j.ArtifactID != nil {
		t.Fatalf("job = %+v, want completed without artifact", j)
	}
}

type valueError struct{ msg string }

func (e valueError) Error() string     { return e.msg }
func (e valueError) ErrorType() string { return "ValueError" }

func TestFailureAndPanic(t *testing.T) {
	b := setup(t, Config{}, map[string]Handler{
		"fail":  func(ctx context.Context, r *Run) (any, error) { return nil, valueError{"Something went wrong"} },
		"panic": func(ctx context.Context, r *Run) (any, error) { panic("boom") },
	})
	j := wait(t, b.s, submit(t, b.s, "fail"))
	if diff := cmp.Diff("ValueError: Something went wrong", deref(j.Error)); diff != "" || j.Status != StatusFailed {
		t.Fatalf("status %s, error mismatch (-want +got):\n%s", j.Status, diff)
	}
	if j.ErrorTraceback == nil || *j.ErrorTraceback == "" || j.ArtifactID != nil {
		t.Fatalf("job = %+v, want traceback and no artifact", j)
	}
	j = wait(t, b.s, submit(t, b.s, "panic"))
	if j.Status != StatusFailed || deref(j.Error) != "panic: boom" {
		t.Fatalf("job = %+v, want failed with panic: boom", j)
	}
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

func TestConcurrencyLimitAndFIFO(t *testing.T) {
	var running, peak atomic.Int32
	g := newGate()
	b := setup(t, Config{MaxConcurrency: 2}, map[string]Handler{
		"work": func(ctx context.Context, r *Run) (any, error) {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			g.started <- r.Job.ID
			<-g.release // one receive per job: the test frees one slot at a time
			running.Add(-1)
			return nil, nil
		},
	})
	var ids []string
	for range 5 {
		ids = append(ids, submit(t, b.s, "work"))
	}
	first := map[string]bool{<-g.started: true, <-g.started: true}
	if diff := cmp.Diff(map[string]bool{ids[0]: true, ids[1]: true}, first); diff != "" {
		t.Fatalf("first jobs to start (-want +got):\n%s", diff)
	}
	if p, r := b.s.Counts(); p != 3 || r != 2 {
		t.Fatalf("Counts() = %d pending, %d running; want 3, 2", p, r)
	}
	// Each freed slot goes to the oldest waiting job.
	for _, want := range ids[2:] {
		g.release <- struct{}{}
		if got := <-g.started; got != want {
			t.Fatalf("next job to start = %s, want %s (submission order)", got, want)
		}
	}
	for range 2 {
		g.release <- struct{}{}
	}
	for _, id := range ids {
		wait(t, b.s, id)
	}
	if peak.Load() != 2 {
		t.Errorf("peak concurrency %d, want 2", peak.Load())
	}
}

func TestSetMaxConcurrency(t *testing.T) {
	b := setup(t, Config{MaxConcurrency: 3}, nil)
	b.s.SetMaxConcurrency(5)
	if got := b.s.MaxConcurrency(); got != 5 {
		t.Errorf("MaxConcurrency() = %d, want 5", got)
	}
	b.s.SetMaxConcurrency(0)
	if got := b.s.MaxConcurrency(); got != 0 {
		t.Errorf("MaxConcurrency() = %d, want 0 (unlimited)", got)
	}
}

func TestCancel(t *testing.T) {
	g := newGate()
	b := setup(t, Config{MaxConcurrency: 1}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			<-ctx.Done()
			return "ignored", nil
		},
	})
	runningID := submit(t, b.s, "block")
	pendingID := submit(t, b.s, "block")
	<-g.started

	t.Run("pending job never starts", func(t *testing.T) {
		j, err := b.s.Cancel(t.Context(), pendingID)
		if err != nil || j.Status != StatusCanceled || j.FinishedAt == nil || j.StartedAt != nil {
			t.Fatalf("Cancel(pending) = %+v, %v", j, err)
		}
	})
	t.Run("running job", func(t *testing.T) {
		j, err := b.s.Cancel(t.Context(), runningID)
		if err != nil || j.Status != StatusCanceled || j.FinishedAt == nil {
			t.Fatalf("Cancel(running) = %+v, %v", j, err)
		}
		got, _ := b.s.Get(t.Context(), runningID)
		if got.Status != StatusCanceled || got.ArtifactID != nil {
			t.Fatalf("stored %+v, want canceled without artifact", got)
		}
	})
	t.Run("finished job", func(t *testing.T) {
		_, err := b.s.Cancel(t.Context(), runningID)
		var fe *FinishedError
		if !errors.As(err, &fe) || fe.Error() != "Job "+runningID+" is already canceled" {
			t.Fatalf("Cancel(canceled) error = %v", err)
		}
	})
	t.Run("unknown job", func(t *testing.T) {
		for _, id := range []string{wire.NewID(), "invalid-ulid"} {
			if _, err := b.s.Cancel(t.Context(), id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Cancel(%s) error = %v, want ErrNotFound", id, err)
			}
		}
	})
	select {
	case id := <-g.started:
		t.Fatalf("cancelled pending job %s started", id)
	default:
	}
}

func TestDeleteRunning(t *testing.T) {
	g := newGate()
	b := setup(t, Config{}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			<-ctx.Done()
			return nil, context.Cause(ctx)
		},
	})
	id := submit(t, b.s, "block")
	<-g.started
	events, unsubscribe := b.s.Subscribe(id)
	defer unsubscribe()
	if err := b.s.Delete(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Get(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v, want ErrNotFound", err)
	}
	if ev := <-events; !ev.Deleted {
		t.Fatalf("event = %+v, want Deleted", ev)
	}
	if err := b.s.Delete(t.Context(), id); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v, want ErrNotFound", err)
	}
}

func TestWaitTimeout(t *testing.T) {
	g := newGate()
	b := setup(t, Config{}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) { <-g.release; return nil, nil },
	})
	id := submit(t, b.s, "block")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if _, err := b.s.Wait(ctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait error = %v, want deadline exceeded", err)
	}
	close(g.release)
	if j := wait(t, b.s, id); j.Status != StatusCompleted {
		t.Fatalf("job %+v, want completed after the timed-out wait", j)
	}
	if _, err := b.s.Wait(t.Context(), wire.NewID()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Wait(unknown) = %v, want ErrNotFound", err)
	}
}

func TestListOrderAndFilter(t *testing.T) {
	b := setup(t, Config{}, map[string]Handler{
		"ok": func(ctx context.Context, r *Run) (any, error) { return nil, nil },
	})
	var ids []string
	for range 3 {
		id := submit(t, b.s, "ok")
		wait(t, b.s, id)
		ids = append(ids, id)
	}
	jobs, err := b.s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID)
	}
	want := []string{ids[2], ids[1], ids[0]}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("List order mismatch (-want +got):\n%s", diff)
	}
	running, _ := b.s.List(t.Context(), StatusRunning)
	if len(running) != 0 {
		t.Errorf("List(running) = %d jobs, want 0", len(running))
	}
}

// committer writes a marker row with the job's completion.
type committer struct{ id string }

func (c committer) CommitJob(tx *gorm.DB) (string, error) {
	return c.id, tx.Exec("INSERT INTO markers(id) VALUES (?)", c.id).Error
}

func TestCommitterAtomicWithCompletion(t *testing.T) {
	g := newGate()
	b := setup(t, Config{}, map[string]Handler{
		"commit": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			<-g.release
			return committer{id: wire.NewID()}, nil
		},
	})
	if err := b.db.Exec("CREATE TABLE markers(id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	id := submit(t, b.s, "commit")
	<-g.started
	close(g.release)
	j := wait(t, b.s, id)
	var n int64
	b.db.Table("markers").Where("id = ?", deref(j.ArtifactID)).Count(&n)
	if j.Status != StatusCompleted || n != 1 {
		t.Fatalf("job %+v with %d marker rows, want completed with exactly one", j, n)
	}
}

func TestRecovery(t *testing.T) {
	db := openDB(t)
	now := wire.Now()
	pgid := 999999 // no such group: the kill must be tolerated
	rows := []Job{
		{ID: wire.NewID(), Kind: "ok", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, PGID: &pgid, Attempt: 1},
		{ID: wire.NewID(), Kind: "ok", Status: StatusPending, SubmittedAt: now, Attempt: 1},
		{ID: wire.NewID(), Kind: "ok", Status: StatusCompleted, SubmittedAt: now, StartedAt: &now, FinishedAt: &now, Attempt: 1},
	}
	if err := db.Create(&rows).Error; err != nil {
		t.Fatal(err)
	}
	s := newSched(db, Config{})
	if err := s.Handle("ok", func(ctx context.Context, r *Run) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())

	interrupted := wait(t, s, rows[0].ID)
	if interrupted.Status != StatusFailed || deref(interrupted.Error) != InterruptedError {
		t.Errorf("running job after restart = %+v, want failed as interrupted", interrupted)
	}
	if requeued := wait(t, s, rows[1].ID); requeued.Status != StatusCompleted {
		t.Errorf("pending job after restart = %+v, want completed", requeued)
	}
	if done := wait(t, s, rows[2].ID); done.FinishedAt == nil || !done.FinishedAt.Equal(now) {
		t.Errorf("completed job changed: %+v", done)
	}
}

func TestRecoveryWithRetries(t *testing.T) {
	db := openDB(t)
	now := wire.Now()
	row := Job{ID: wire.NewID(), Kind: "ok", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, Attempt: 1}
	if err := db.Create(&row).Error; err != nil {
		t.Fatal(err)
	}
	s := newSched(db, Config{RetryInterrupted: 3})
	var attempts []int
	var mu sync.Mutex
	_ = s.Handle("ok", func(ctx context.Context, r *Run) (any, error) {
		mu.Lock()
		attempts = append(attempts, r.Job.Attempt)
		mu.Unlock()
		return nil, nil
	})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	// The interrupted job goes back to pending with its attempt counted,
	// and this start runs it again: it is not lost.
	got := wait(t, s, row.ID)
	if got.Status != StatusCompleted || got.Attempt != 2 || !strings.Contains(string(mustJSON(t, got.Record(true))), `"attempt":2`) {
		t.Fatalf("job after restart = %+v, want completed on attempt 2", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff([]int{2}, attempts); diff != "" {
		t.Errorf("attempts seen by the handler (-want +got):\n%s", diff)
	}
}

func TestDrain(t *testing.T) {
	g := newGate()
	db := openDB(t)
	s := newSched(db, Config{MaxConcurrency: 1, DrainTimeout: 50 * time.Millisecond})
	_ = s.Handle("block", func(ctx context.Context, r *Run) (any, error) {
		g.started <- r.Job.ID
		<-ctx.Done()
		return nil, context.Cause(ctx)
	})
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	running := submit(t, s, "block")
	pending := submit(t, s, "block")
	<-g.started
	if err := s.Stop(t.Context()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if _, err := s.Submit(t.Context(), "block", nil); !errors.Is(err, ErrDraining) {
		t.Fatalf("Submit after Stop = %v, want ErrDraining", err)
	}
	r, _ := s.Get(t.Context(), running)
	p, _ := s.Get(t.Context(), pending)
	if r.Status != StatusFailed || deref(r.Error) != InterruptedError {
		t.Errorf("running job after drain = %+v, want interrupted", r)
	}
	if p.Status != StatusPending {
		t.Errorf("waiting job after drain = %+v, want still pending", p)
	}
	if err := s.Stop(t.Context()); err != nil {
		t.Errorf("second Stop = %v, want nil", err)
	}
}

func TestQueueBound(t *testing.T) {
	g := newGate()
	b := setup(t, Config{MaxConcurrency: 1, MaxPending: 2}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) { g.started <- r.Job.ID; <-g.release; return nil, nil },
	})
	submit(t, b.s, "block")
	<-g.started
	submit(t, b.s, "block")
	submit(t, b.s, "block")
	if _, err := b.s.Submit(t.Context(), "block", nil); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit past the bound = %v, want ErrQueueFull", err)
	}
	close(g.release)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBatchedCompletions finishes many jobs at once, some cancelled just
// before they return: completions share transactions, yet every completed
// job has exactly its own marker row and no cancelled job has one.
func TestBatchedCompletions(t *testing.T) {
	const n = 120
	g := newGate()
	b := setup(t, Config{}, map[string]Handler{
		"commit": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			select { // a cancelled job still returns a result: it must not be stored
			case <-g.release:
			case <-ctx.Done():
			}
			return committer{id: wire.NewID()}, nil
		},
	})
	if err := b.db.Exec("CREATE TABLE markers(id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	g.started = make(chan string, n)
	var ids []string
	for range n {
		ids = append(ids, submit(t, b.s, "commit"))
	}
	for range n {
		<-g.started
	}
	for i := 0; i < n; i += 3 {
		if _, err := b.s.Cancel(t.Context(), ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	close(g.release)
	completed := 0
	for i, id := range ids {
		j := wait(t, b.s, id)
		var markers int64
		if j.ArtifactID != nil {
			b.db.Table("markers").Where("id = ?", *j.ArtifactID).Count(&markers)
		}
		switch {
		case i%3 == 0 && (j.Status != StatusCanceled || j.ArtifactID != nil):
			t.Errorf("cancelled job %s = %s with artifact %v", id, j.Status, j.ArtifactID)
		case i%3 != 0 && (j.Status != StatusCompleted || markers != 1):
			t.Errorf("job %s = %s with %d marker rows", id, j.Status, markers)
		case i%3 != 0:
			completed++
		}
	}
	var total int64
	b.db.Table("markers").Count(&total)
	if total != int64(completed) {
		t.Errorf("%d marker rows for %d completed jobs", total, completed)
	}
}

// TestCommittersShareABatch completes many jobs whose results are plain
// committers at once, one of which cannot be stored: they are written in
// one transaction without savepoints, and when one fails the batch is
// applied again job by job, so only that job fails and every other one is
// completed with exactly its own marker row.
func TestCommittersShareABatch(t *testing.T) {
	const n = 24
	const bad = 5
	const taken = "01K000000000000000000TAKEN"
	g := newGate()
	g.started = make(chan string, n)
	b := setup(t, Config{MaxConcurrency: n}, map[string]Handler{
		"commit": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			<-g.release
			id := wire.NewID()
			if string(r.Job.Args) == `"bad"` {
				id = taken
			}
			return committer{id: id}, nil
		},
	})
	if err := b.db.Exec("CREATE TABLE markers(id TEXT PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	if err := b.db.Exec("INSERT INTO markers(id) VALUES (?)", taken).Error; err != nil {
		t.Fatal(err)
	}
	args := make([]any, n)
	for i := range args {
		args[i] = "good"
	}
	args[bad] = "bad"
	ids, err := b.s.SubmitMany(t.Context(), "commit", args)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		<-g.started
	}
	close(g.release)
	for i, id := range ids {
		j := wait(t, b.s, id)
		if i == bad {
			if j.Status != StatusFailed || !strings.Contains(deref(j.Error), "store result") {
				t.Errorf("job with the bad result = %s (%s), want failed storing its result", j.Status, deref(j.Error))
			}
			continue
		}
		var rows int64
		b.db.Table("markers").Where("id = ?", deref(j.ArtifactID)).Count(&rows)
		if j.Status != StatusCompleted || rows != 1 {
			t.Errorf("job %d = %s, artifact %v, %d marker rows; want completed with its one row", i, j.Status, j.ArtifactID, rows)
		}
	}
	var total int64
	b.db.Table("markers").Count(&total)
	if total != n {
		t.Errorf("%d marker rows, want %d (one per completed job, plus the one taken before)", total, n)
	}
}
