// Package e2e runs the example services as real processes and checks the
// promises that only a real process can prove: nothing is lost when the
// service is killed, and a drain finishes what runs.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/testkit"
)

// binaries are built once per test run, each when a test first needs it,
// so running one test builds one example.
var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]error{}
)

func binary(t *testing.T, name string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if binDir == "" {
		dir, err := os.MkdirTemp("", "chapkit-e2e-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = dir
	}
	err, done := binBuilt[name]
	if !done {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "../../examples/"+name)
		if out, berr := cmd.CombinedOutput(); berr != nil {
			err = fmt.Errorf("build %s: %v\n%s", name, berr, out)
		}
		binBuilt[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(binDir, name)
}

func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Stop()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// service is one running example process.
type service struct {
	t    *testing.T
	cmd  *exec.Cmd
	base string
	log  *bytes.Buffer
	done chan error
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func start(t *testing.T, bin, db string) *service {
	t.Helper()
	addr := freePort(t)
	s := &service{t: t, base: "http://" + addr, log: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(bin, "-addr", addr, "-db", db)
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
	testkit.Eventually(t, 30*time.Second, "service answers /health", func() bool {
		resp, err := http.Get(s.base + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return s
}

func (s *service) do(method, path string, body any) (int, []byte, http.Header) {
	s.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.base+path, r)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

func (s *service) decode(method, path string, body any, want int, into any) {
	s.t.Helper()
	code, data, _ := s.do(method, path, body)
	if code != want {
		s.t.Fatalf("%s %s = %d %s, want %d", method, path, code, data, want)
	}
	if into != nil {
		if err := json.Unmarshal(data, into); err != nil {
			s.t.Fatalf("%s %s: decode %s: %v", method, path, data, err)
		}
	}
}

type jobRecord struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	ArtifactID *string `json:"artifact_id"`
}

func (s *service) createTask(command, taskType string, params any) string {
	var out struct {
		ID string `json:"id"`
	}
	s.decode("POST", "/api/v1/tasks", map[string]any{"command": command, "task_type": taskType, "parameters": params}, http.StatusCreated, &out)
	return out.ID
}

func (s *service) execute(taskID string) string {
	var out struct {
		JobID string `json:"job_id"`
	}
	s.decode("POST", "/api/v1/tasks/"+taskID+"/$execute", nil, http.StatusAccepted, &out)
	return out.JobID
}

func (s *service) jobs() map[string]jobRecord {
	var list []jobRecord
	s.decode("GET", "/api/v1/jobs", nil, http.StatusOK, &list)
	m := make(map[string]jobRecord, len(list))
	for _, j := range list {
		m[j.ID] = j
	}
	return m
}

func terminal(status string) bool {
	return status == "completed" || status == "failed" || status == "canceled"
}

// marked returns the pids of processes whose command line contains marker.
func marked(marker string) []string {
	entries, _ := os.ReadDir("/proc")
	var pids []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(b), "\x00", " ")
		if strings.Contains(cmd, marker) && !strings.Contains(cmd, "e2e.test") {
			// A zombie keeps its cmdline empty, so anything listed here
			// is alive.
			pids = append(pids, e.Name()+": "+cmd)
		}
	}
	return pids
}

// step is one group of executions: count runs of the task spec
// "type|command[|parameters]".
type step struct {
	spec  string
	count int
}

// crashAndRecover submits executions in plan order, kills the service with
// SIGKILL while they run, restarts it on the same database and checks that
// nothing was lost. It returns how long the restarted service took until
// every job was terminal.
func crashAndRecover(t *testing.T, bin string, plan []step, marker string) time.Duration {
	db := filepath.Join(t.TempDir(), "crash.db")
	s := start(t, bin, db)
	var taskIDs []string
	var submitted []string
	for _, st := range plan {
		parts := strings.SplitN(st.spec, "|", 3)
		var params any
		if len(parts) == 3 {
			_ = json.Unmarshal([]byte(parts[2]), &params)
		}
		id := s.createTask(parts[1], parts[0], params)
		taskIDs = append(taskIDs, id)
		for range st.count {
			submitted = append(submitted, s.execute(id))
		}
	}
	// Kill once some jobs finished and some run.
	testkit.Eventually(t, 60*time.Second, "some jobs completed and some run", func() bool {
		var done, running int
		for _, j := range s.jobs() {
			switch j.Status {
			case "completed":
				done++
			case "running":
				running++
			}
		}
		return done > 0 && running > 0
	})
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done

	restarted := time.Now()
	s2 := start(t, bin, db)
	var jobs map[string]jobRecord
	testkit.Eventually(t, 120*time.Second, "every job is terminal after the restart", func() bool {
		jobs = s2.jobs()
		for _, j := range jobs {
			if !terminal(j.Status) {
				return false
			}
		}
		return true
	})
	elapsed := time.Since(restarted)

	lost := 0
	interrupted := 0
	artifactOf := map[string]string{}
	for _, id := range submitted {
		j, ok := jobs[id]
		if !ok {
			lost++
			continue
		}
		switch j.Status {
		case "completed":
			if j.ArtifactID == nil {
				t.Errorf("completed job %s has no artifact", id)
				continue
			}
			artifactOf[*j.ArtifactID] = id
		case "failed":
			if j.Error == nil || *j.Error != "interrupted: the service stopped while the job was running" {
				t.Errorf("failed job %s has error %v, want the interrupted error", id, j.Error)
			}
			interrupted++
		default:
			t.Errorf("job %s ended %s", id, j.Status)
		}
	}
	if lost != 0 || len(jobs) != len(submitted) {
		t.Fatalf("lost %d of %d jobs; %d listed", lost, len(submitted), len(jobs))
	}
	if interrupted == 0 {
		t.Errorf("no job was recorded as interrupted, although the service was killed while jobs ran")
	}
	// Exactly one artifact per completed job, and no artifact without its job.
	var arts []struct {
		ID   string `json:"id"`
		Data struct {
			Task struct {
				ID string `json:"id"`
			} `json:"task"`
		} `json:"data"`
	}
	s2.decode("GET", "/api/v1/artifacts", nil, http.StatusOK, &arts)
	if len(arts) != len(artifactOf) {
		t.Errorf("%d artifacts for %d completed jobs", len(arts), len(artifactOf))
	}
	for _, a := range arts {
		if _, ok := artifactOf[a.ID]; !ok {
			t.Errorf("artifact %s belongs to no completed job", a.ID)
		}
	}
	// The task table is intact.
	for _, id := range taskIDs {
		s2.decode("GET", "/api/v1/tasks/"+id, nil, http.StatusOK, nil)
	}
	if marker != "" {
		if left := marked(marker); len(left) > 0 {
			t.Errorf("processes of the killed service still run: %v", left)
		}
	}
	t.Logf("%d jobs: %d completed, %d interrupted, 0 lost; all terminal %s after the restart",
		len(submitted), len(artifactOf), interrupted, elapsed.Round(time.Millisecond))
	return elapsed
}

func TestCrashRecoveryShellTasks(t *testing.T) {
	bin := binary(t, "task_execution")
	// A unique sleep length marks the shell children of this test.
	crashAndRecover(t, bin, []step{
		{"shell|echo before", 30},
		{"shell|sleep 30.4242", 3}, // running when the service is killed
		{"shell|true", 150},
		{"shell|sleep 0.01", 117},
	}, "30.4242")
}

func TestCrashRecoveryFunctionTasks(t *testing.T) {
	bin := binary(t, "function_tasks")
	crashAndRecover(t, bin, []step{
		{`python|process_data|{"input_text": "before"}`, 30},
		{`python|slow_computation|{"seconds": 30}`, 3}, // running when the service is killed
		{`python|process_data|{"input_text": "x", "uppercase": true}`, 150},
		{"shell|echo shell", 117},
	}, "")
}

// TestDrain sends SIGTERM while three jobs run and more wait: $execute
// answers 503 with Retry-After during the drain, the running jobs finish,
// the process exits 0, and the waiting jobs run after the next start.
func TestDrain(t *testing.T) {
	bin := binary(t, "task_execution")
	db := filepath.Join(t.TempDir(), "drain.db")
	s := start(t, bin, db)
	slow := s.createTask("sleep 1.5", "shell", nil)
	var ids []string
	for range 6 {
		ids = append(ids, s.execute(slow))
	}
	testkit.Eventually(t, 30*time.Second, "three jobs run", func() bool {
		n := 0
		for _, j := range s.jobs() {
			if j.Status == "running" {
				n++
			}
		}
		return n == 3
	})
	// An SSE stream open before the drain is closed by it.
	streamClosed := make(chan struct{})
	resp, err := http.Get(s.base + "/api/v1/jobs/" + ids[5] + "/$stream")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(streamClosed)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
		resp.Body.Close()
	}()

	began := time.Now()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "$execute answers 503 during the drain", func() bool {
		code, body, h := s.do("POST", "/api/v1/tasks/"+slow+"/$execute", nil)
		if code == http.StatusServiceUnavailable {
			if h.Get("Retry-After") == "" || !strings.HasPrefix(h.Get("Content-Type"), "application/problem+json") {
				t.Errorf("503 without Retry-After or problem+json: %v %s", h, body)
			}
			return true
		}
		return false
	})
	select {
	case <-streamClosed:
	case <-time.After(10 * time.Second):
		t.Error("SSE stream still open during the drain")
	}
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("service exited with %v, want status 0\n%s", err, s.log)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("service did not exit after SIGTERM")
	}
	drain := time.Since(began)

	s2 := start(t, bin, db)
	jobs := s2.jobs()
	completed, pending := 0, 0
	for _, id := range ids {
		switch jobs[id].Status {
		case "completed":
			completed++
		case "pending", "running":
			pending++
		}
	}
	if completed != 3 || pending != 3 {
		t.Fatalf("after the drain: %d completed, %d waiting; want 3 and 3\n%v", completed, pending, jobs)
	}
	testkit.Eventually(t, 30*time.Second, "waiting jobs run after the restart", func() bool {
		jobs := s2.jobs()
		for _, id := range ids {
			if jobs[id].Status != "completed" {
				return false
			}
		}
		return true
	})
	t.Logf("drain with 3 running jobs took %s", drain.Round(time.Millisecond))
}

// TestLoadWithoutLoss drives 10,000 $execute calls from 64 concurrent
// clients against a file database while a prober checks /health: every
// call gets its job, every job completes with exactly one artifact, and
// health answers 200 throughout.
func TestLoadWithoutLoss(t *testing.T) {
	const total, clients = 10_000, 64
	bin := binary(t, "task_execution")
	s := start(t, bin, filepath.Join(t.TempDir(), "load.db"))
	taskID := s.createTask("true", "shell", nil)

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	var probes, unhealthy int
	var slowest time.Duration
	go func() {
		defer close(probeDone)
		for {
			select {
			case <-stopProbe:
				return
			default:
			}
			began := time.Now()
			resp, err := client.Get(s.base + "/health")
			if err != nil || resp.StatusCode != http.StatusOK {
				unhealthy++
			}
			if resp != nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			probes++
			slowest = max(slowest, time.Since(began))
			select {
			case <-stopProbe:
				return
			case <-time.After(20 * time.Millisecond): // probe interval
			}
		}
	}()

	began := time.Now()
	ids := make(chan string, total)
	work := make(chan struct{}, total)
	for range total {
		work <- struct{}{}
	}
	close(work)
	var wg sync.WaitGroup
	var failures sync.Map
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				resp, err := client.Post(s.base+"/api/v1/tasks/"+taskID+"/$execute", "application/json", nil)
				if err != nil {
					failures.Store(err.Error(), true)
					continue
				}
				var out struct {
					JobID string `json:"job_id"`
				}
				err = json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusAccepted {
					failures.Store(fmt.Sprintf("status %d: %v", resp.StatusCode, err), true)
					continue
				}
				ids <- out.JobID
			}
		}()
	}
	wg.Wait()
	close(ids)
	submitTime := time.Since(began)
	failures.Range(func(k, _ any) bool { t.Errorf("execute failed: %v", k); return true })

	// The list is large while the backlog is; poll it slowly so the
	// check does not become the load.
	testkit.EventuallyEvery(t, 5*time.Minute, 250*time.Millisecond, "every job is terminal", func() bool {
		for _, st := range []string{"pending", "running"} {
			var list []jobRecord
			s.decode("GET", "/api/v1/jobs?status_filter="+st, nil, http.StatusOK, &list)
			if len(list) > 0 {
				return false
			}
		}
		return true
	})
	close(stopProbe)
	<-probeDone
	elapsed := time.Since(began)

	jobs := s.jobs()
	seen := map[string]bool{}
	for id := range ids {
		j, ok := jobs[id]
		if !ok || j.Status != "completed" || j.ArtifactID == nil {
			t.Fatalf("job %s = %+v, want completed with an artifact", id, j)
		}
		seen[*j.ArtifactID] = true
	}
	var arts []json.RawMessage
	s.decode("GET", "/api/v1/artifacts", nil, http.StatusOK, &arts)
	if len(jobs) != total || len(seen) != total || len(arts) != total {
		t.Fatalf("%d jobs, %d distinct artifacts referenced, %d artifacts stored; want %d each", len(jobs), len(seen), len(arts), total)
	}
	if unhealthy > 0 {
		t.Errorf("%d of %d health probes failed during the load", unhealthy, probes)
	}
	t.Logf("%d executions from %d clients: submitted in %s, all completed in %s (%.0f/s); %d health probes, slowest %s",
		total, clients, submitTime.Round(time.Millisecond), elapsed.Round(time.Millisecond),
		float64(total)/elapsed.Seconds(), probes, slowest.Round(time.Millisecond))
}
