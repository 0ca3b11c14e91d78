package job

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// crash stops a node the way SIGKILL would: its loops and jobs end and it
// writes nothing more, leaving its row and its running jobs behind.
func (s *Scheduler) crash() {
	s.mu.Lock()
	s.st = stateStopped
	for _, e := range s.running {
		e.cancel(ErrRescued)
	}
	s.loopsOn = false
	s.mu.Unlock()
	s.loopCancel()
	s.loops.Wait()
	s.watchers.Wait()
	s.wg.Wait()
	s.runCancel(ErrShutdown)
	s.stopWriter()
}

// flight counts, per job attempt, how often and how concurrently a handler
// ran it.
type flight struct {
	mu       sync.Mutex
	inFlight map[string]int
	runs     map[string]int // "<id>/<attempt>" → runs
	overlap  []string
}

func newFlight() *flight { return &flight{inFlight: map[string]int{}, runs: map[string]int{}} }

func (f *flight) handler(hold time.Duration) Handler {
	return func(ctx context.Context, r *Run) (any, error) {
		key := fmt.Sprintf("%s/%d", r.Job.ID, r.Job.Attempt)
		f.mu.Lock()
		f.inFlight[r.Job.ID]++
		f.runs[key]++
		if f.inFlight[r.Job.ID] > 1 {
			f.overlap = append(f.overlap, r.Job.ID)
		}
		f.mu.Unlock()
		if hold > 0 {
			t := time.NewTimer(hold)
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
		f.mu.Lock()
		f.inFlight[r.Job.ID]--
		f.mu.Unlock()
		return nil, nil
	}
}

func startNode(t *testing.T, db *gorm.DB, cfg Config, h Handler) *Scheduler {
	t.Helper()
	s := newSched(db, cfg)
	if err := s.Handle("count", h); err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop(context.Background()) })
	return s
}

// TestNeverTwice runs thousands of jobs on three nodes sharing a database
// while jobs are cancelled from nodes that do not run them and one node
// crashes: no job attempt ever runs twice, or on two nodes at once, and
// every job ends.
func TestNeverTwice(t *testing.T) {
	n := 1500
	if testing.Short() {
		n = 300
	}
	db := openDB(t)
	f := newFlight()
	cfg := Config{MaxConcurrency: 8, RescueAfter: 400 * time.Millisecond, PollInterval: 50 * time.Millisecond, RetryInterrupted: 3}
	nodes := []*Scheduler{
		startNode(t, db, cfg, f.handler(time.Millisecond)),
		startNode(t, db, cfg, f.handler(time.Millisecond)),
		startNode(t, db, cfg, f.handler(time.Millisecond)),
	}
	ids := make([]string, n)
	live := nodes
	for i := range ids {
		id, err := live[i%len(live)].Submit(t.Context(), "count", nil)
		if err != nil {
			t.Fatalf("Submit %d: %v", i, err)
		}
		ids[i] = id
		if i%7 == 0 {
			if _, err := live[(i+1)%len(live)].Cancel(t.Context(), id); err != nil {
				if _, finished := err.(*FinishedError); !finished {
					t.Fatalf("Cancel %s: %v", id, err)
				}
			}
		}
		if i == n/2 {
			nodes[2].crash()
			live = nodes[:2]
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	statuses := map[Status]int{}
	for _, id := range ids {
		j, err := nodes[0].Wait(ctx, id)
		if err != nil {
			t.Fatalf("Wait(%s): %v", id, err)
		}
		statuses[j.Status]++
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.overlap) > 0 {
		t.Errorf("%d jobs ran on two nodes at once, first %s", len(f.overlap), f.overlap[0])
	}
	for key, runs := range f.runs {
		if runs > 1 {
			t.Errorf("job attempt %s ran %d times", key, runs)
		}
	}
	if statuses[StatusCompleted]+statuses[StatusCanceled]+statuses[StatusFailed] != n || statuses[StatusCompleted] == 0 {
		t.Errorf("final statuses %v for %d jobs", statuses, n)
	}
}

// TestRescueDeadNode: a node that stops writing its heartbeat has its
// running job rescued by another node within the horizon, and the job runs
// again there under RetryInterrupted.
func TestRescueDeadNode(t *testing.T) {
	db := openDB(t)
	started := make(chan *Run, 4)
	h := func(ctx context.Context, r *Run) (any, error) {
		started <- r
		if r.Job.Attempt == 1 {
			<-ctx.Done()
		}
		return nil, nil
	}
	cfg := Config{RescueAfter: 300 * time.Millisecond, PollInterval: 50 * time.Millisecond, RetryInterrupted: 2}
	a := startNode(t, db, cfg, h)
	id, err := a.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	first := <-started
	if first.Job.Node == nil || *first.Job.Node != a.NodeID() {
		t.Fatalf("first run on node %v, want %s", first.Job.Node, a.NodeID())
	}
	a.crash()
	b := startNode(t, db, cfg, h)
	var second *Run
	select {
	case second = <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("job was not rescued within 10 s")
	}
	got := wait(t, b, id)
	want := struct {
		Status  Status
		Attempt int
		Node    string
	}{StatusCompleted, 2, b.NodeID()}
	gotView := struct {
		Status  Status
		Attempt int
		Node    string
	}{got.Status, got.Attempt, deref(got.Node)}
	if diff := cmp.Diff(want, gotView); diff != "" || second.Job.Attempt != 2 {
		t.Errorf("rescued job (-want +got):\n%s (second attempt %d)", diff, second.Job.Attempt)
	}
	nodes, err := b.Nodes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 1 || nodes[0].ID != b.NodeID() || !nodes[0].Leader {
		t.Errorf("Nodes() = %+v, want only %s as leader", nodes, b.NodeID())
	}
}

// TestCrossNodeCancelAndStream: a job running on one node is cancelled
// through another, and a subscriber on a third sees every transition.
func TestCrossNodeCancelAndStream(t *testing.T) {
	db := openDB(t)
	started := make(chan string, 1)
	stopped := make(chan error, 1)
	runner := startNode(t, db, Config{PollInterval: 100 * time.Millisecond}, func(ctx context.Context, r *Run) (any, error) {
		started <- r.Job.ID
		<-ctx.Done()
		stopped <- context.Cause(ctx)
		return nil, nil
	})
	// other handles another kind only, so it never claims the job.
	other := newSched(db, Config{PollInterval: 100 * time.Millisecond})
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
	events, unsubscribe := other.Subscribe(id)
	defer unsubscribe()
	if _, err := other.Cancel(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	select {
	case cause := <-stopped:
		if cause != ErrCanceled {
			t.Errorf("cause = %v, want ErrCanceled", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the running node did not stop the cancelled job within 5 s")
	}
	// The subscriber may first be told the state it joined in (running);
	// the cancel must follow.
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Job != nil && ev.Job.Status == StatusCanceled {
				return
			}
			if ev.Deleted || ev.Job.Status != StatusRunning {
				t.Fatalf("event = %+v, want running then canceled", ev)
			}
		case <-deadline:
			t.Fatal("no event for the cancel within 5 s")
		}
	}
}

// TestDeclaredDeadNodeClaimsNothing: once another node removed a node's
// row, that node claims no job (the claim checks its row in the same
// statement), so its rescued work cannot run beside the rescuer's.
func TestDeclaredDeadNodeClaimsNothing(t *testing.T) {
	db := openDB(t)
	f := newFlight()
	b := startNode(t, db, Config{RescueAfter: time.Minute, PollInterval: 20 * time.Millisecond}, f.handler(0))
	if err := db.Exec("DELETE FROM chapkit_nodes WHERE id = ?", b.NodeID()).Error; err != nil {
		t.Fatal(err)
	}
	b.SetMaxConcurrency(0) // wakes the fetcher
	jobs, err := b.claim(t.Context(), 5)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("claim by a removed node = %d jobs, %v; want none", len(jobs), err)
	}
	id, err := b.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs, err = b.claim(t.Context(), 5)
	if err != nil || len(jobs) != 0 {
		t.Fatalf("claim by a removed node after a submission = %d jobs, %v; want none", len(jobs), err)
	}
	// Once it writes a heartbeat it finds itself removed, joins again
	// and runs the job.
	b.beat(t.Context())
	if j := wait(t, b, id); j.Status != StatusCompleted {
		t.Errorf("job after the node joined again = %s, want completed", j.Status)
	}
}

// TestOtherHostWithSameNameIsNotRescued: a node row with this host name
// but another kernel or pid namespace (a container, a cloned machine) and
// a fresh heartbeat is alive as far as anyone here can tell: its job stays
// running when another node starts.
func TestOtherHostWithSameNameIsNotRescued(t *testing.T) {
	db := openDB(t)
	now := wire.Now()
	other := wire.NewID()
	if err := db.Exec("INSERT INTO chapkit_nodes (id, hostname, pid, host_key, proc_start, started_ms, heartbeat_ms, rescue_after_ms) VALUES (?, ?, 1, 'another-boot/pid:[1]', '1', ?, ?, 60000)",
		other, hostname(), now.UnixMilli(), now.UnixMilli()).Error; err != nil {
		t.Fatal(err)
	}
	row := Job{ID: wire.NewID(), Kind: "count", Status: StatusRunning, SubmittedAt: now, StartedAt: &now, Attempt: 1, Node: &other}
	if err := db.Create(&row).Error; err != nil {
		t.Fatal(err)
	}
	s := startNode(t, db, Config{RescueAfter: time.Minute}, newFlight().handler(0))
	got, err := s.Get(t.Context(), row.ID)
	if err != nil || got.Status != StatusRunning {
		t.Errorf("job of a live node with the same host name = %+v, %v; want still running", got, err)
	}
}

// TestDrainWithRetryWaitsForTheCall: a drain that requeues a running job
// for another attempt does so only after the job's call returned; a call
// still running is recorded failed, so no other node runs the next
// attempt beside it.
func TestDrainWithRetryWaitsForTheCall(t *testing.T) {
	db := openDB(t)
	f := newFlight()
	started := make(chan struct{}, 1)
	slowStop := func(ctx context.Context, r *Run) (any, error) {
		key := fmt.Sprintf("%s/%d", r.Job.ID, r.Job.Attempt)
		f.mu.Lock()
		f.inFlight[r.Job.ID]++
		f.runs[key]++
		f.mu.Unlock()
		started <- struct{}{}
		<-ctx.Done()
		// Winding down takes a while after the cancellation, as a shell
		// command's kill and reap can; the call is still in flight.
		t := time.NewTimer(200 * time.Millisecond)
		<-t.C
		f.mu.Lock()
		f.inFlight[r.Job.ID]--
		f.mu.Unlock()
		return nil, ctx.Err()
	}
	cfg := Config{RetryInterrupted: 3, DrainTimeout: 20 * time.Millisecond, PollInterval: 20 * time.Millisecond}
	a := newSched(db, cfg)
	_ = a.Handle("count", slowStop)
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	id, err := a.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the job did not start within 10 s")
	}
	// b joins once a runs the job, so only a drain can hand it over.
	b := startNode(t, db, cfg, f.handler(0))
	if err := a.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	j := wait(t, b, id)
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.overlap) > 0 {
		t.Errorf("attempts overlapped on two nodes: %v", f.overlap)
	}
	if j.Status != StatusCompleted || j.Attempt != 2 {
		t.Errorf("job after the drain = %s attempt %d, want completed on attempt 2", j.Status, j.Attempt)
	}
}

// TestFenceThenRecoverLeavesNothingRunning: a node that fences itself and
// then writes its heartbeat again records the jobs the fence stopped, so
// none stays running forever.
func TestFenceThenRecoverLeavesNothingRunning(t *testing.T) {
	db := openDB(t)
	started := make(chan struct{}, 1)
	s := startNode(t, db, Config{RescueAfter: time.Minute}, func(ctx context.Context, r *Run) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, nil
	})
	id, err := s.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	s.fence("test")
	s.beat(t.Context())
	j := wait(t, s, id)
	if j.Status != StatusFailed || deref(j.Error) != InterruptedError {
		t.Errorf("job stopped by the fence = %s %s, want failed as interrupted", j.Status, deref(j.Error))
	}
}

// TestRestartWithFixedNodeID: a node with a configured id that crashed
// starts again under the same id, rescuing what it left.
func TestRestartWithFixedNodeID(t *testing.T) {
	db := openDB(t)
	started := make(chan struct{}, 1)
	block := func(ctx context.Context, r *Run) (any, error) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, nil
	}
	cfg := Config{NodeID: "pod-0", RescueAfter: time.Minute}
	first := startNode(t, db, cfg, block)
	id, err := first.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	first.crash()
	// A restart is another process: the row now names a pid that is gone.
	if err := db.Exec("UPDATE chapkit_nodes SET pid = 999999, proc_start = '1' WHERE id = 'pod-0'").Error; err != nil {
		t.Fatal(err)
	}
	second := startNode(t, db, cfg, block)
	if second.NodeID() != "pod-0" {
		t.Fatalf("NodeID = %s", second.NodeID())
	}
	if j := wait(t, second, id); j.Status != StatusFailed || deref(j.Error) != InterruptedError {
		t.Errorf("job of the crashed incarnation = %s %s, want failed as interrupted", j.Status, deref(j.Error))
	}
}
