package job

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
)

func countJobs(t *testing.T, db *gorm.DB) int64 {
	t.Helper()
	var n int64
	if err := db.Model(&Job{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestSubmitStartsAtOnceWhenASlotIsFree checks that a job submitted while
// a slot is free is stored already running on this node (no claim), and
// that one submitted while the slots are full waits pending.
func TestSubmitStartsAtOnceWhenASlotIsFree(t *testing.T) {
	g := newGate()
	b := setup(t, Config{MaxConcurrency: 1}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) { g.started <- r.Job.ID; <-g.release; return nil, nil },
	})
	first := submit(t, b.s, "block")
	j, err := b.s.Get(t.Context(), first)
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != StatusRunning || j.StartedAt == nil || deref(j.Node) != b.s.NodeID() {
		t.Fatalf("job submitted with a free slot = %s on node %q, want running on %q at once", j.Status, deref(j.Node), b.s.NodeID())
	}
	if got := <-g.started; got != first {
		t.Fatalf("handler started %s, want %s", got, first)
	}
	second := submit(t, b.s, "block")
	if j, err = b.s.Get(t.Context(), second); err != nil || j.Status != StatusPending || j.Node != nil {
		t.Fatalf("job submitted with the slot taken = %+v (%v), want pending on no node", j, err)
	}
	close(g.release)
	for _, id := range []string{first, second} {
		if j := wait(t, b.s, id); j.Status != StatusCompleted {
			t.Errorf("job %s = %s, want completed", id, j.Status)
		}
	}
}

// TestSubmitMany stores a batch of jobs in one call: the ids come back in
// order, each job runs exactly once with its own arguments, and an empty
// batch stores nothing.
func TestSubmitMany(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	b := setup(t, Config{MaxConcurrency: 3}, map[string]Handler{
		"echo": func(ctx context.Context, r *Run) (any, error) {
			mu.Lock()
			runs[string(r.Job.Args)]++
			mu.Unlock()
			return nil, nil
		},
	})
	const n = 40
	args := make([]any, n)
	for i := range args {
		args[i] = map[string]int{"i": i}
	}
	ids, err := b.s.SubmitMany(t.Context(), "echo", args)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != n {
		t.Fatalf("SubmitMany returned %d ids, want %d", len(ids), n)
	}
	want := map[string]int{}
	for i, id := range ids {
		j := wait(t, b.s, id)
		if j.Status != StatusCompleted || string(j.Args) != string(mustJSON(t, args[i])) {
			t.Errorf("job %d = %s with args %s, want completed with %s", i, j.Status, j.Args, mustJSON(t, args[i]))
		}
		want[string(mustJSON(t, args[i]))] = 1
	}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, runs); diff != "" {
		t.Errorf("runs per job (-want +got):\n%s", diff)
	}
	if empty, err := b.s.SubmitMany(t.Context(), "echo", nil); err != nil || len(empty) != 0 {
		t.Errorf("SubmitMany(nil) = %v, %v; want no ids and no error", empty, err)
	}
	if got := countJobs(t, b.db); got != n {
		t.Errorf("%d jobs stored, want %d", got, n)
	}
}

// TestSubmitManyAllOrNothing checks that a batch that does not fit below
// the pending bound, or whose arguments cannot be encoded, stores nothing.
func TestSubmitManyAllOrNothing(t *testing.T) {
	g := newGate()
	b := setup(t, Config{MaxConcurrency: 1, MaxPending: 3}, map[string]Handler{
		"block": func(ctx context.Context, r *Run) (any, error) { g.started <- r.Job.ID; <-g.release; return nil, nil },
	})
	defer close(g.release)
	submit(t, b.s, "block")
	<-g.started
	if _, err := b.s.SubmitMany(t.Context(), "block", []any{1, 2, 3, 4}); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("SubmitMany past the bound = %v, want ErrQueueFull", err)
	}
	if _, err := b.s.SubmitMany(t.Context(), "block", []any{1, make(chan int)}); err == nil {
		t.Fatal("SubmitMany with arguments that cannot be encoded succeeded")
	}
	if _, err := b.s.SubmitMany(t.Context(), "none", []any{1}); err == nil {
		t.Fatal("SubmitMany of a kind without handler succeeded")
	}
	if got := countJobs(t, b.db); got != 1 {
		t.Errorf("%d jobs stored after refused batches, want only the running one", got)
	}
	ids, err := b.s.SubmitMany(t.Context(), "block", []any{1, 2, 3})
	if err != nil || len(ids) != 3 {
		t.Fatalf("SubmitMany up to the bound = %v, %v; want 3 ids", ids, err)
	}
	for _, id := range ids {
		if j, err := b.s.Get(t.Context(), id); err != nil || j.Status != StatusPending {
			t.Errorf("job %s = %+v (%v), want pending behind the running one", id, j, err)
		}
	}
}

// marker is a batchable result: it writes a row of the markers table,
// all markers of a batch with one statement. A marker whose id is taken
// already makes that statement fail.
type marker struct {
	id string
	b  *markerBatch
}

type markerBatch struct {
	mu    sync.Mutex
	calls int // CommitJobs calls that succeeded
}

func (m marker) CommitJob(tx *gorm.DB) (string, error) {
	return wire.NewID(), tx.Exec("INSERT INTO markers(id) VALUES (?)", m.id).Error
}

func (m marker) Batcher() Batcher { return m.b }

func (mb *markerBatch) CommitJobs(tx *gorm.DB, results []BatchCommitter, ids []string) error {
	var q strings.Builder
	args := make([]any, len(results))
	q.WriteString("INSERT INTO markers(id) VALUES ")
	for i, r := range results {
		if i > 0 {
			q.WriteString(", ")
		}
		q.WriteString("(?)")
		args[i] = r.(marker).id
	}
	if err := tx.Exec(q.String(), args...).Error; err != nil {
		return err
	}
	mb.mu.Lock()
	mb.calls++
	mb.mu.Unlock()
	return nil
}

// TestBatchCommitterFallsBackPerJob completes many batchable results at
// once, one of which cannot be stored and some of whose jobs are cancelled
// just before: the bad result fails only its own job, every other job
// completes with exactly its own row, and cancelled jobs store nothing.
func TestBatchCommitterFallsBackPerJob(t *testing.T) {
	const n = 30
	const taken = "01K000000000000000000TAKEN"
	mb := &markerBatch{}
	g := newGate()
	g.started = make(chan string, n)
	var mu sync.Mutex
	markers := map[string]string{} // job id → marker id
	b := setup(t, Config{}, map[string]Handler{
		"mark": func(ctx context.Context, r *Run) (any, error) {
			g.started <- r.Job.ID
			select {
			case <-g.release:
			case <-ctx.Done():
			}
			id := wire.NewID()
			if string(r.Job.Args) == `"bad"` {
				id = taken
			}
			mu.Lock()
			markers[r.Job.ID] = id
			mu.Unlock()
			return marker{id: id, b: mb}, nil
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
	const bad = 7
	args[bad] = "bad"
	ids, err := b.s.SubmitMany(t.Context(), "mark", args)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		<-g.started
	}
	for i := 0; i < n; i += 5 {
		if _, err := b.s.Cancel(t.Context(), ids[i]); err != nil {
			t.Fatal(err)
		}
	}
	close(g.release)
	for i, id := range ids {
		j := wait(t, b.s, id)
		mu.Lock()
		mark := markers[id]
		mu.Unlock()
		var rows int64
		b.db.Table("markers").Where("id = ?", mark).Count(&rows)
		switch {
		case i%5 == 0:
			if j.Status != StatusCanceled || j.ArtifactID != nil || rows != 0 {
				t.Errorf("cancelled job %d = %s, artifact %v, %d marker rows; want canceled with none", i, j.Status, j.ArtifactID, rows)
			}
		case i == bad:
			if j.Status != StatusFailed || !strings.Contains(deref(j.Error), "store result") {
				t.Errorf("job with the bad result = %s (%s), want failed storing its result", j.Status, deref(j.Error))
			}
		default:
			if j.Status != StatusCompleted || j.ArtifactID == nil || rows != 1 {
				t.Errorf("job %d = %s, artifact %v, %d marker rows; want completed with its one row", i, j.Status, j.ArtifactID, rows)
			}
		}
	}
	var total int64
	b.db.Table("markers").Count(&total)
	completed := 0
	for i := range ids {
		if i%5 != 0 && i != bad {
			completed++
		}
	}
	if total != int64(completed)+1 {
		t.Errorf("%d marker rows, want %d (one per completed job, plus the one taken before)", total, completed+1)
	}
	// Every completion above may have shared the bad row's transaction
	// and fallen back; a good job on its own takes the batched path.
	last, err := b.s.Submit(t.Context(), "mark", "good")
	if err != nil {
		t.Fatal(err)
	}
	if j := wait(t, b.s, last); j.Status != StatusCompleted || j.ArtifactID == nil {
		t.Errorf("last job = %s, artifact %v; want completed with one", j.Status, j.ArtifactID)
	}
	mb.mu.Lock()
	if mb.calls == 0 {
		t.Error("no batch of results was written with one CommitJobs call")
	}
	mb.mu.Unlock()
	// Artifact ids recorded are distinct.
	seen := []string{}
	for _, id := range ids {
		j := wait(t, b.s, id)
		if j.ArtifactID != nil {
			if slices.Contains(seen, *j.ArtifactID) {
				t.Errorf("artifact id %s recorded twice", *j.ArtifactID)
			}
			seen = append(seen, *j.ArtifactID)
		}
	}
}

// TestRescueKillsLeftoversOfJobsWithoutGroup rescues a dead node of this
// host whose running jobs recorded a process group or none (a shell job
// records it only after it has run for a moment): the configured killer is
// called for both running jobs, with 0 for the one without group, and not
// for finished jobs without group.
func TestRescueKillsLeftoversOfJobsWithoutGroup(t *testing.T) {
	db := openDB(t)
	now := wire.Now()
	dead := Node{ID: wire.NewID(), Hostname: "here", PID: os.Getpid(), HostKey: hostKey(), ProcStart: "not this process",
		StartedMS: now.UnixMilli(), HeartbeatMS: now.UnixMilli(), RescueAfterMS: 15000}
	if dead.HostKey == "" {
		t.Skip("this system cannot tell processes of this host apart")
	}
	if err := db.Create(&dead).Error; err != nil {
		t.Fatal(err)
	}
	pgid := 999999
	rows := []Job{
		{ID: wire.NewID(), Kind: "ok", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, Node: &dead.ID, Attempt: 1},
		{ID: wire.NewID(), Kind: "ok", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, Node: &dead.ID, PGID: &pgid, Attempt: 1},
		{ID: wire.NewID(), Kind: "ok", Status: StatusCanceled, SubmittedAt: now, StartedAt: &now, FinishedAt: &now, Node: &dead.ID, Attempt: 1},
	}
	if err := db.Create(&rows).Error; err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	killed := map[string]int{}
	s := newSched(db, Config{KillLeftovers: func(jobID string, pgid int) error {
		mu.Lock()
		defer mu.Unlock()
		killed[jobID] = pgid
		return nil
	}})
	if err := s.Handle("ok", func(ctx context.Context, r *Run) (any, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Stop(context.Background())
	for _, j := range rows[:2] {
		if got := wait(t, s, j.ID); got.Status != StatusFailed || deref(got.Error) != InterruptedError {
			t.Errorf("job %s of the dead node = %s (%s), want failed as interrupted", j.ID, got.Status, deref(got.Error))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{rows[0].ID: 0, rows[1].ID: pgid}
	if diff := cmp.Diff(want, killed); diff != "" {
		t.Errorf("leftovers killed per job (-want +got):\n%s", diff)
	}
}
