package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/testkit"
)

// This file runs three task_execution processes on one PostgreSQL
// database, the deployment docs/scaling-out.md describes, and measures
// what only real processes on real sockets show: cross-node cancel and
// stream latency, the rescue after a SIGKILL, and a rolling restart.
// Every measurement is logged on a line starting with "MEASURE".

// fleetRescueAfter is the rescue horizon the nodes run with: short, so
// the SIGKILL test waits seconds rather than the default 15 s.
const fleetRescueAfter = 3 * time.Second

// interruptedError is the error a rescued job is recorded with.
const interruptedError = "interrupted: the service stopped while the job was running"

// fleet is three example processes on one database. nodes[i] always
// listens on addrs[i]; a restart replaces nodes[i] and ids[i].
type fleet struct {
	t      *testing.T
	bin    string
	db     string
	addrs  []string
	nodes  []*service
	ids    []string // node id of nodes[i], as /api/v1/system/nodes names it
	client *http.Client
}

// fleetJob is a job record with the members these tests read.
type fleetJob struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	SubmittedAt *string `json:"submitted_at"`
	StartedAt   *string `json:"started_at"`
	FinishedAt  *string `json:"finished_at"`
	Error       *string `json:"error"`
	ArtifactID  *string `json:"artifact_id"`
	Node        *string `json:"node"`
}

type nodeInfo struct {
	ID      string `json:"id"`
	PID     int    `json:"pid"`
	Leader  bool   `json:"leader"`
	Running int    `json:"running"`
}

// newFleet starts three nodes on a new PostgreSQL database and waits until
// each sees all three as live.
func newFleet(t *testing.T) *fleet {
	t.Helper()
	db := pgtest.URL(t)
	f := &fleet{t: t, bin: binary(t, "task_execution"), db: db,
		client: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	t.Cleanup(f.client.CloseIdleConnections)
	// The schema is made once up front, as a deployment would with
	// -migrate, so the three nodes start against a ready database.
	if out, err := exec.Command(f.bin, "-db", db, "-migrate").CombinedOutput(); err != nil {
		t.Fatalf("-migrate: %v\n%s", err, out)
	}
	for range 3 {
		addr := freePort(t)
		f.addrs = append(f.addrs, addr)
		f.nodes = append(f.nodes, f.launch(addr))
		f.ids = append(f.ids, "")
	}
	for i := range f.nodes {
		f.ids[i] = f.nodeID(i)
	}
	testkit.Eventually(t, 30*time.Second, "every node lists three live nodes", func() bool {
		for i := range f.nodes {
			if len(f.liveNodes(i)) != 3 {
				return false
			}
		}
		return true
	})
	return f
}

// launch starts one node on addr and waits for /health.
func (f *fleet) launch(addr string) *service {
	t := f.t
	t.Helper()
	s := &service{t: t, base: "http://" + addr, log: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(f.bin, "-addr", addr, "-db", f.db, "-rescue-after", fleetRescueAfter.String())
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
	testkit.Eventually(t, 30*time.Second, "node "+addr+" answers /health", func() bool {
		select {
		case err := <-s.done:
			s.done <- err
			t.Fatalf("node %s exited at start: %v\n%s", addr, err, s.log)
		default:
		}
		resp, err := f.client.Get(s.base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

// liveNodes is GET /api/v1/system/nodes on node i.
func (f *fleet) liveNodes(i int) []nodeInfo {
	var nodes []nodeInfo
	f.nodes[i].decode("GET", "/api/v1/system/nodes", nil, http.StatusOK, &nodes)
	return nodes
}

// nodeID finds the id of node i by its process id.
func (f *fleet) nodeID(i int) string {
	f.t.Helper()
	pid := f.nodes[i].cmd.Process.Pid
	var id string
	testkit.Eventually(f.t, 10*time.Second, fmt.Sprintf("node with pid %d is listed", pid), func() bool {
		for _, n := range f.liveNodes(i) {
			if n.PID == pid {
				id = n.ID
				return true
			}
		}
		return false
	})
	return id
}

// index returns the slot of the node with id, or -1.
func (f *fleet) index(id *string) int {
	for i, n := range f.ids {
		if id != nil && *id == n {
			return i
		}
	}
	return -1
}

func (f *fleet) job(i int, id string) fleetJob {
	var j fleetJob
	f.nodes[i].decode("GET", "/api/v1/jobs/"+id, nil, http.StatusOK, &j)
	return j
}

// submit posts $execute for taskID to base; safe from any goroutine.
func (f *fleet) submit(base, taskID string) (string, int, error) {
	resp, err := f.client.Post(base+"/api/v1/tasks/"+taskID+"/$execute", "application/json", nil)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", resp.StatusCode, err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", resp.StatusCode, fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	var out struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(body, &out); err != nil || out.JobID == "" {
		return "", resp.StatusCode, fmt.Errorf("decode %s: %v", body, err)
	}
	return out.JobID, resp.StatusCode, nil
}

// settle waits until no job is pending or running, polling node i slowly
// so the check does not become the load.
func (f *fleet) settle(i int, within time.Duration) {
	f.t.Helper()
	testkit.EventuallyEvery(f.t, within, 100*time.Millisecond, "every job is terminal", func() bool {
		for _, st := range []string{"pending", "running"} {
			var list []json.RawMessage
			f.nodes[i].decode("GET", "/api/v1/jobs?status_filter="+st, nil, http.StatusOK, &list)
			if len(list) > 0 {
				return false
			}
		}
		return true
	})
}

// checkOnce checks that each of want completed on a node of the fleet's
// history with exactly one artifact, whose stdout is the job's own id
// (the task echoes $CHAPKIT_JOB_ID), and that there are no other jobs or
// artifacts. It returns the completed jobs per node id.
func (f *fleet) checkOnce(i int, want []string) map[string]int {
	t := f.t
	t.Helper()
	var list []fleetJob
	f.nodes[i].decode("GET", "/api/v1/jobs", nil, http.StatusOK, &list)
	jobs := make(map[string]fleetJob, len(list))
	for _, j := range list {
		jobs[j.ID] = j
	}
	perNode := map[string]int{}
	artifactJob := map[string]string{}
	for _, id := range want {
		j, ok := jobs[id]
		switch {
		case !ok:
			t.Errorf("job %s was accepted but is lost", id)
			continue
		case j.Status != "completed" || j.ArtifactID == nil || j.Node == nil:
			t.Errorf("job %s = %s (artifact %v, node %v), want completed with an artifact and a node", id, j.Status, j.ArtifactID, j.Node)
			continue
		}
		perNode[*j.Node]++
		if other, dup := artifactJob[*j.ArtifactID]; dup {
			t.Errorf("jobs %s and %s name the same artifact %s", id, other, *j.ArtifactID)
		}
		artifactJob[*j.ArtifactID] = id
	}
	if len(jobs) != len(want) {
		t.Errorf("%d jobs stored for %d accepted submissions", len(jobs), len(want))
	}
	var arts []struct {
		ID   string `json:"id"`
		Data struct {
			Stdout   string `json:"stdout"`
			ExitCode int    `json:"exit_code"`
		} `json:"data"`
	}
	f.nodes[i].decode("GET", "/api/v1/artifacts", nil, http.StatusOK, &arts)
	runs := map[string]int{} // job id → artifacts that its run wrote
	for _, a := range arts {
		runs[strings.TrimSpace(a.Data.Stdout)]++
		if a.Data.ExitCode != 0 {
			t.Errorf("artifact %s: exit code %d", a.ID, a.Data.ExitCode)
		}
		if id, ok := artifactJob[a.ID]; ok && strings.TrimSpace(a.Data.Stdout) != id {
			t.Errorf("artifact %s of job %s holds the output of %q", a.ID, id, a.Data.Stdout)
		}
	}
	if len(arts) != len(jobs) {
		t.Errorf("%d artifacts for %d jobs, want one each", len(arts), len(jobs))
	}
	for id, n := range runs {
		if n != 1 {
			t.Errorf("job %q ran %d times (one artifact per run)", id, n)
		}
	}
	for _, id := range want {
		if runs[id] != 1 {
			t.Errorf("job %s has %d artifacts, want 1", id, runs[id])
		}
	}
	return perNode
}

// blocker is one long-running job, found in /proc by its marker.
type blocker struct {
	job    string
	marker string // the unique argument of its sleep
	node   int    // slot of the node that runs it
}

// block fills every slot of the fleet (MaxConcurrency 3 per node, so
// three jobs per node) with sleeps whose argument starts with 600.<tag>,
// unique per job and per test run, and waits until all run. Jobs left
// running when the test ends are cancelled.
func (f *fleet) block(tag string) []blocker {
	t := f.t
	t.Helper()
	var out []blocker
	for k := range 9 {
		marker := fmt.Sprintf("600.%s%04d%d", tag, os.Getpid()%10000, k+1)
		task := f.nodes[k%3].createTask("sleep "+marker, "shell", nil)
		out = append(out, blocker{job: f.nodes[k%3].execute(task), marker: marker})
	}
	t.Cleanup(func() {
		for _, b := range out {
			for i, s := range f.nodes {
				if s.cmd.ProcessState == nil {
					f.nodes[i].do("POST", "/api/v1/jobs/"+b.job+"/$cancel", nil)
					break
				}
			}
		}
		for _, b := range out {
			for _, p := range marked(b.marker) {
				// A leftover this test's services started: end it so it
				// does not outlive the test, and report it.
				t.Errorf("process still running at the end: %s", p)
				var pid int
				if _, err := fmt.Sscan(strings.SplitN(p, ":", 2)[0], &pid); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	})
	testkit.Eventually(t, 30*time.Second, "nine blockers run, three per node, each with its process", func() bool {
		per := map[int]int{}
		for k := range out {
			j := f.job(0, out[k].job)
			out[k].node = f.index(j.Node)
			if j.Status != "running" || out[k].node < 0 || len(marked(out[k].marker)) == 0 {
				return false
			}
			per[out[k].node]++
		}
		return per[0] == 3 && per[1] == 3 && per[2] == 3
	})
	return out
}

// onNode returns the blockers node i runs.
func onNode(bs []blocker, i int) []blocker {
	var out []blocker
	for _, b := range bs {
		if b.node == i {
			out = append(out, b)
		}
	}
	return out
}

// TestThreeNodes is the end-to-end test of scaling out: three
// task_execution processes on one PostgreSQL database.
func TestThreeNodes(t *testing.T) {
	if ok, why := pgtest.Available(); !ok {
		t.Skipf("PostgreSQL tests skipped: %s", why)
	}
	t.Run("RoundRobinNeverTwice", testRoundRobin)
	t.Run("CancelAcrossNodes", testCancelAcrossNodes)
	t.Run("StreamAcrossNodes", testStreamAcrossNodes)
	t.Run("SigkillRescue", testSigkillRescue)
	t.Run("RollingRestart", testRollingRestart)
}

// testRoundRobin submits executions round-robin over the three nodes from
// several clients: every node runs some, every job completes exactly once.
func testRoundRobin(t *testing.T) {
	total := 3000
	if testing.Short() {
		total = 300
	}
	const clients = 12
	f := newFleet(t)
	taskID := f.nodes[0].createTask(`echo "$CHAPKIT_JOB_ID"`, "shell", nil)

	began := time.Now()
	work := make(chan int, total)
	for k := range total {
		work <- k
	}
	close(work)
	ids := make([]string, total)
	var mu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for k := range work {
				id, _, err := f.submit(f.nodes[k%3].base, taskID)
				if err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("execution %d on node %d: %v", k, k%3, err))
					mu.Unlock()
					continue
				}
				ids[k] = id
			}
		})
	}
	wg.Wait()
	submitted := time.Since(began)
	for _, msg := range failures {
		t.Error(msg)
	}
	if len(failures) > 0 {
		t.FailNow()
	}
	f.settle(1, 5*time.Minute)
	elapsed := time.Since(began)

	perNode := f.checkOnce(2, ids)
	var counts []int
	for i, id := range f.ids {
		if perNode[id] == 0 {
			t.Errorf("node %d (%s) ran no job; per node: %v", i, id, perNode)
		}
		counts = append(counts, perNode[id])
	}
	if len(perNode) != 3 {
		t.Errorf("jobs ran on %d nodes, want the fleet's 3: %v", len(perNode), perNode)
	}
	t.Logf("MEASURE three_nodes_executions=%d clients=%d submitted=%s all_completed=%s rate=%.0f/s per_node=%v",
		total, clients, submitted.Round(time.Millisecond), elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), counts)
}

// testCancelAcrossNodes cancels, through each node in turn, a job that
// runs on the next one: the job is recorded canceled and its process is
// gone within a second of the answer.
func testCancelAcrossNodes(t *testing.T) {
	f := newFleet(t)
	bs := f.block("123")
	var latencies []time.Duration
	canceled := map[string]bool{}
	for via := range 3 {
		target := onNode(bs, (via+1)%3)[0]
		canceled[target.job] = true
		var rec fleetJob
		f.nodes[via].decode("POST", "/api/v1/jobs/"+target.job+"/$cancel", nil, http.StatusAccepted, &rec)
		answered := time.Now()
		if rec.Status != "canceled" {
			t.Errorf("$cancel answered status %q, want canceled", rec.Status)
		}
		testkit.EventuallyEvery(t, 5*time.Second, 2*time.Millisecond, "the sleep "+target.marker+" is gone", func() bool {
			return len(marked(target.marker)) == 0
		})
		latency := time.Since(answered)
		latencies = append(latencies, latency)
		if latency > time.Second {
			t.Errorf("cancel through node %d of a job on node %d: process gone after %s, want within 1s", via, (via+1)%3, latency)
		}
		for i := range 3 {
			if j := f.job(i, target.job); j.Status != "canceled" || j.Node == nil || *j.Node != f.ids[(via+1)%3] {
				t.Errorf("node %d shows the cancelled job as %s on %v, want canceled on %s", i, j.Status, j.Node, f.ids[(via+1)%3])
			}
		}
	}
	// The other blockers were not touched.
	for _, b := range bs {
		if canceled[b.job] {
			continue
		}
		if j := f.job(0, b.job); j.Status != "running" || len(marked(b.marker)) == 0 {
			t.Errorf("uncancelled blocker %s is %s (process alive: %v), want running", b.job, j.Status, len(marked(b.marker)) > 0)
		}
	}
	sort.Slice(latencies, func(a, b int) bool { return latencies[a] < latencies[b] })
	t.Logf("MEASURE cross_node_cancel_to_process_gone min=%s max=%s samples=%v",
		latencies[0].Round(time.Microsecond), latencies[len(latencies)-1].Round(time.Microsecond), latencies)
}

// sseEvent is one event of a job stream and when it arrived.
type sseEvent struct {
	rec fleetJob
	at  time.Time
}

// testStreamAcrossNodes opens $stream on node 0 for a job that can only
// run on node 1 and follows it from pending to completed.
func testStreamAcrossNodes(t *testing.T) {
	f := newFleet(t)
	bs := f.block("789")
	// Every slot is busy, so the new job waits.
	taskID := f.nodes[0].createTask(`sleep 0.2; echo "$CHAPKIT_JOB_ID"`, "shell", nil)
	jobID := f.nodes[0].execute(taskID)

	stream, cancel := testkit.OpenSSE(t, f.client, f.nodes[0].base+"/api/v1/jobs/"+jobID+"/$stream")
	defer cancel()
	if stream.Resp.StatusCode != http.StatusOK {
		t.Fatalf("$stream = %d", stream.Resp.StatusCode)
	}
	events := make(chan sseEvent, 16)
	go func() {
		defer close(events)
		for {
			payload, ok := stream.Next()
			if !ok {
				return
			}
			var rec fleetJob
			at := time.Now()
			if err := json.Unmarshal([]byte(payload), &rec); err != nil {
				t.Errorf("event %q: %v", payload, err)
				return
			}
			events <- sseEvent{rec: rec, at: at}
		}
	}()
	first := <-events
	if first.rec.Status != "pending" || first.rec.Node != nil {
		t.Fatalf("first event %+v, want pending on no node", first.rec)
	}
	// Free one slot on node 1: only node 1 can claim the job.
	freed := onNode(bs, 1)[0]
	f.nodes[2].decode("POST", "/api/v1/jobs/"+freed.job+"/$cancel", nil, http.StatusAccepted, nil)

	got := []sseEvent{first}
	deadline := time.After(testkit.Deadline)
	for done := false; !done; {
		select {
		case ev, ok := <-events:
			if !ok {
				done = true
				break
			}
			got = append(got, ev)
		case <-deadline:
			t.Fatalf("stream did not end; events so far: %+v", got)
		}
	}
	var statuses []string
	for _, ev := range got {
		statuses = append(statuses, ev.rec.Status)
	}
	if diff := cmp.Diff([]string{"pending", "running", "completed"}, statuses); diff != "" {
		t.Fatalf("stream statuses (-want +got):\n%s", diff)
	}
	last := got[len(got)-1].rec
	if last.Node == nil || *last.Node != f.ids[1] || got[1].rec.Node == nil || *got[1].rec.Node != f.ids[1] {
		t.Fatalf("the job ran on %v, want node 1 (%s); the stream is on node 0 (%s)", last.Node, f.ids[1], f.ids[0])
	}
	if diff := cmp.Diff(f.job(1, jobID), last); diff != "" {
		t.Errorf("last event differs from the stored record (-stored +event):\n%s", diff)
	}
	stamp := func(s *string) time.Time {
		t.Helper()
		if s == nil {
			t.Fatalf("missing timestamp in %+v", last)
		}
		ts, err := time.Parse(time.RFC3339Nano, *s)
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	running := got[1].at.Sub(stamp(got[1].rec.StartedAt))
	completed := got[2].at.Sub(stamp(last.FinishedAt))
	for name, d := range map[string]time.Duration{"running": running, "completed": completed} {
		if d > time.Second {
			t.Errorf("the %s event arrived %s after the recorded time, want within 1s", name, d)
		}
	}
	t.Logf("MEASURE cross_node_sse running_after_started_at=%s completed_after_finished_at=%s",
		running.Round(time.Microsecond), completed.Round(time.Microsecond))
}

// testSigkillRescue kills the leader with SIGKILL while every node runs
// three sleeps: the survivors rescue its jobs within the horizon, record
// them interrupted, and kill what they started; their own jobs go on.
func testSigkillRescue(t *testing.T) {
	f := newFleet(t)
	bs := f.block("456")
	victim := -1
	for _, n := range f.liveNodes(0) {
		if n.Leader {
			victim = f.index(&n.ID)
		}
	}
	if victim < 0 {
		t.Fatalf("no leader among %+v", f.liveNodes(0))
	}
	survivor := (victim + 1) % 3
	doomed := onNode(bs, victim)

	killed := time.Now()
	if err := f.nodes[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-f.nodes[victim].done
	for _, b := range doomed {
		if len(marked(b.marker)) == 0 {
			t.Fatalf("the sleep %s of the killed node ended with it; the rescue would prove nothing", b.marker)
		}
	}
	var rescued time.Duration
	testkit.EventuallyEvery(t, 4*fleetRescueAfter, 5*time.Millisecond, "the killed node's jobs are rescued", func() bool {
		for _, b := range doomed {
			if f.job(survivor, b.job).Status == "running" {
				return false
			}
		}
		rescued = time.Since(killed)
		return true
	})
	// The rescuer kills a job's processes before it records the job, so
	// they should be gone at the first look; polls counts the looks.
	var gone time.Duration
	polls := 0
	testkit.EventuallyEvery(t, 5*time.Second, 2*time.Millisecond, "the killed node's processes are gone", func() bool {
		polls++
		for _, b := range doomed {
			if len(marked(b.marker)) > 0 {
				return false
			}
		}
		gone = time.Since(killed)
		return true
	})
	if gone-rescued > time.Second {
		t.Errorf("the killed node's processes were gone %s after its jobs were rescued, want within 1s", gone-rescued)
	}
	for _, b := range doomed {
		j := f.job(survivor, b.job)
		if j.Status != "failed" || j.Error == nil || *j.Error != interruptedError {
			t.Errorf("rescued job %s = %s %v, want failed with %q", b.job, j.Status, j.Error, interruptedError)
		}
	}
	// The horizon counts from the victim's last heartbeat, at most a fifth
	// of it before the kill; the leader's lease, half the horizon, may
	// have to move first. Twice the horizon bounds all of that.
	if rescued > 2*fleetRescueAfter {
		t.Errorf("rescue took %s after SIGKILL, want within %s", rescued, 2*fleetRescueAfter)
	}
	for _, b := range bs {
		if b.node == victim {
			continue
		}
		if j := f.job(survivor, b.job); j.Status != "running" || len(marked(b.marker)) == 0 {
			t.Errorf("the job %s of a live node is %s (process alive: %v), want running", b.job, j.Status, len(marked(b.marker)) > 0)
		}
	}
	live := f.liveNodes(survivor)
	leaders := 0
	for _, n := range live {
		if n.ID == f.ids[victim] {
			t.Errorf("the killed node is still listed: %+v", live)
		}
		if n.Leader {
			leaders++
		}
	}
	if len(live) != 2 || leaders != 1 {
		t.Errorf("live nodes after the kill: %+v, want the two survivors, one leader", live)
	}
	t.Logf("MEASURE rescue_after_sigkill=%s processes_gone_after_sigkill=%s polls_until_gone=%d horizon=%s killed_leader=true",
		rescued.Round(time.Millisecond), gone.Round(time.Millisecond), polls, fleetRescueAfter)
}

// testRollingRestart stops each node in turn with SIGTERM and starts a new
// one on its port while clients submit a steady stream: every accepted job
// completes exactly once.
func testRollingRestart(t *testing.T) {
	f := newFleet(t)
	taskID := f.nodes[0].createTask(`sleep 0.05; echo "$CHAPKIT_JOB_ID"`, "shell", nil)

	var mu sync.Mutex
	var accepted []string
	// A request written on a kept-alive connection just as the stopping
	// node closes it gets no answer. The server had not read it, so it
	// must have created no job: checkOnce finds no job beyond the
	// accepted ones, which is what makes retrying such a request safe.
	lost := 0
	refusals := 0 // 503 from a draining node, or no listener
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(accepted) }
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 2 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond) // the load's pace: 50 jobs/s per client
			defer tick.Stop()
			for k := c; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				// Try the nodes in turn from this one until one accepts.
				for try := range 3 {
					id, code, err := f.submit("http://"+f.addrs[(k+try)%3], taskID)
					mu.Lock()
					switch {
					case err == nil:
						accepted = append(accepted, id)
					case code == http.StatusServiceUnavailable || errors.Is(err, syscall.ECONNREFUSED):
						refusals++
					default:
						lost++
						t.Logf("submission without an answer: %v", err)
					}
					mu.Unlock()
					if err == nil {
						break
					}
				}
			}
		})
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wg.Wait()
		}
	}()

	var drains []time.Duration
	var oldIDs []string
	for i := range 3 {
		before := count()
		testkit.Eventually(t, 30*time.Second, "the load runs", func() bool { return count() >= before+40 })
		testkit.Eventually(t, 10*time.Second, fmt.Sprintf("node %d runs jobs", i), func() bool {
			for _, n := range f.liveNodes(i) {
				if n.ID == f.ids[i] {
					return n.Running > 0
				}
			}
			return false
		})
		old := f.nodes[i]
		began := time.Now()
		if err := old.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-old.done:
			if err != nil {
				t.Fatalf("node %d exited with %v after SIGTERM, want 0\n%s", i, err, old.log)
			}
		case <-time.After(40 * time.Second):
			t.Fatalf("node %d did not exit after SIGTERM", i)
		}
		drains = append(drains, time.Since(began))
		oldIDs = append(oldIDs, f.ids[i])
		f.nodes[i] = f.launch(f.addrs[i])
		f.ids[i] = f.nodeID(i)
	}
	before := count()
	testkit.Eventually(t, 30*time.Second, "the load runs on the new nodes", func() bool { return count() >= before+60 })
	close(stop)
	wg.Wait()

	f.settle(0, 2*time.Minute)
	mu.Lock()
	defer mu.Unlock()
	perNode := f.checkOnce(1, accepted)
	for _, id := range append(oldIDs, f.ids...) {
		if perNode[id] == 0 {
			t.Errorf("node %s ran no job: %v", id, perNode)
		}
	}
	t.Logf("MEASURE rolling_restart jobs=%d refused_and_retried=%d unanswered=%d drains=%v",
		len(accepted), refusals, lost, drains)
}
