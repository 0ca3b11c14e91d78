package job

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

// crash stops a node the way SIGKILL would: its loops and jobs end and it
// writes nothing more, leaving its row and its running jobs behind.
func (s *Scheduler) crash() {
	s.mu.Lock()
	s.st = stateStopped
	for _, e := range s.running {
		e.cancel(ErrRescued)
	}
	s.mu.Unlock()
	s.loopCancel()
	s.loops.Wait()
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
	other := startNode(t, db, Config{MaxConcurrency: -1, PollInterval: 100 * time.Millisecond}, func(ctx context.Context, r *Run) (any, error) { return nil, nil })
	other.SetMaxConcurrency(0)
	id, err := runner.Submit(t.Context(), "count", nil)
	if err != nil {
		t.Fatal(err)
	}
	<-started
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
