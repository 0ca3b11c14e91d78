package e2e

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// artifactData executes a task through HTTP and returns the job status and
// the artifact's data without the task snapshot.
func (s *service) artifactData(taskID string) (string, map[string]json.RawMessage) {
	s.t.Helper()
	id := s.execute(taskID)
	var j jobRecord
	testkit.Eventually(s.t, 30*time.Second, "job "+id+" ends", func() bool {
		s.decode("GET", "/api/v1/jobs/"+id, nil, http.StatusOK, &j)
		return terminal(j.Status)
	})
	if j.ArtifactID == nil {
		return j.Status, nil
	}
	var art struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	s.decode("GET", "/api/v1/artifacts/"+*j.ArtifactID, nil, http.StatusOK, &art)
	delete(art.Data, "task")
	return j.Status, art.Data
}

// stripTimestamp removes the "timestamp" member, whose value is the time of the call.
func stripTimestamp(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("result %s: %v", raw, err)
	}
	if ts, ok := m["timestamp"].(string); ok {
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || !strings.HasSuffix(ts, "Z") {
			t.Errorf("timestamp %q is not RFC 3339 UTC", ts)
		}
		delete(m, "timestamp")
	}
	return m
}

func TestFunctionTasksExample(t *testing.T) {
	s := start(t, binary(t, "function_tasks"), filepath.Join(t.TempDir(), "f.db"))
	var tasks []struct {
		ID      string `json:"id"`
		Enabled bool   `json:"enabled"`
	}
	s.decode("GET", "/api/v1/tasks", nil, http.StatusOK, &tasks)
	enabled := map[string]bool{}
	for _, tk := range tasks {
		enabled[tk.ID] = tk.Enabled
	}
	wantEnabled := map[string]bool{
		"01JCSEED0000000000000PYTH1": true, "01JCSEED0000000000000PYTH2": true, "01JCSEED0000000000000PYTH3": true,
		"01JCSEED0000000000000PYTH4": true, "01JCSEED0000000000000PYTH5": true, "01JCSEED0000000000000PYTH6": false,
		"01JCSEED0000000000000PYTH7": true, "01JCSEED0000000000000PYTH8": false,
	}
	if diff := cmp.Diff(wantEnabled, enabled); diff != "" {
		t.Fatalf("seeded tasks (-want +got):\n%s", diff)
	}
	results := []struct {
		id   string
		want map[string]any
	}{
		{"PYTH1", map[string]any{"result": 42.0, "operation": "sum"}},
		{"PYTH2", map[string]any{"original": "Hello World", "processed": "HELLO WORLD", "length": 11.0}},
		{"PYTH3", map[string]any{"completed": true, "duration_seconds": 1.0}},
		{"PYTH7", map[string]any{"total_tasks": 8.0, "injected_session": true}},
	}
	for _, r := range results {
		status, data := s.artifactData("01JCSEED0000000000000" + r.id)
		if status != "completed" || string(data["error"]) != "null" {
			t.Errorf("%s: job %s, error %s", r.id, status, data["error"])
			continue
		}
		if diff := cmp.Diff(r.want, stripTimestamp(t, data["result"])); diff != "" {
			t.Errorf("%s result (-want +got):\n%s", r.id, diff)
		}
	}
	status, data := s.artifactData("01JCSEED0000000000000PYTH4")
	var e struct{ Type, Message, Traceback string }
	_ = json.Unmarshal(data["error"], &e)
	if status != "completed" || string(data["result"]) != "null" || e.Type != "ValueError" ||
		e.Message != "This task was designed to fail" || e.Traceback == "" {
		t.Errorf("failing_task: job %s, artifact %s", status, data)
	}
	status, data = s.artifactData("01JCSEED0000000000000PYTH5")
	if status != "completed" || string(data["stdout"]) != `"This is a shell task\n"` {
		t.Errorf("shell seed: job %s, artifact %s", status, data)
	}
	for _, id := range []string{"01JCSEED0000000000000PYTH6", "01JCSEED0000000000000PYTH8"} {
		code, body, _ := s.do("POST", "/api/v1/tasks/"+id+"/$execute", nil)
		if want := `{"detail":"Cannot execute disabled task ` + id + `"}`; code != http.StatusBadRequest || string(body) != want {
			t.Errorf("execute %s = %d %s, want 400 %s", id, code, body, want)
		}
	}
	// A function task created without parameters uses the defaults.
	id := s.createTask("slow_computation", "function", map[string]any{"seconds": 0})
	if _, data := s.artifactData(id); string(data["result"]) != `{"completed":true,"duration_seconds":0}` {
		t.Errorf("slow_computation(seconds=0) = %s", data["result"])
	}
	id = s.createTask("failing_task", "python", map[string]any{"should_fail": false})
	if _, data := s.artifactData(id); string(data["result"]) != `{"success":true}` {
		t.Errorf("failing_task(should_fail=false) = %s", data["result"])
	}
	id = s.createTask("process_data", "python", map[string]any{"input_text": "Hello World"})
	if _, data := s.artifactData(id); stripTimestamp(t, data["result"])["processed"] != "hello world" {
		t.Errorf("process_data default = %s", data["result"])
	}
}

func TestReadOnlyTasksExample(t *testing.T) {
	s := start(t, binary(t, "readonly_tasks"), filepath.Join(t.TempDir(), "r.db"))
	for _, c := range []struct{ method, path string }{
		{"POST", "/api/v1/tasks"},
		{"PUT", "/api/v1/tasks/01JCSEED0000000000000READ1"},
		{"PATCH", "/api/v1/tasks/01JCSEED0000000000000READ1"},
		{"DELETE", "/api/v1/tasks/01JCSEED0000000000000READ1"},
	} {
		code, body, h := s.do(c.method, c.path, map[string]any{"command": "rm -rf /"})
		if code != http.StatusMethodNotAllowed || string(body) != `{"detail":"Method Not Allowed"}` || h.Get("Allow") == "" {
			t.Errorf("%s %s = %d %s (Allow %q), want 405", c.method, c.path, code, body, h.Get("Allow"))
		}
	}
	s.decode("GET", "/api/v1/tasks/$schema", nil, http.StatusOK, nil)
	results := map[string]string{
		"READ1": `{"status":"healthy","checks":["database","scheduler","artifacts"]}`,
		"READ2": `{"cleaned":42,"criteria":"older than 7 days"}`,
		"READ3": `{"success":true,"destination":"/backups","size_mb":150}`,
	}
	for id, want := range results {
		status, data := s.artifactData("01JCSEED0000000000000" + id)
		if status != "completed" || string(data["result"]) != want {
			t.Errorf("%s: job %s, result %s, want %s", id, status, data["result"], want)
		}
	}
	if status, data := s.artifactData("01JCSEED0000000000000READ4"); status != "completed" || string(data["stdout"]) != `"System check complete\n"` {
		t.Errorf("READ4: job %s, artifact %s", status, data)
	}
	code, body, _ := s.do("POST", "/api/v1/tasks/01JCSEED0000000000000READ5/$execute", nil)
	if code != http.StatusBadRequest || string(body) != `{"detail":"Cannot execute disabled task 01JCSEED0000000000000READ5"}` {
		t.Errorf("execute READ5 = %d %s", code, body)
	}
}

func TestTaskExecutionExample(t *testing.T) {
	bin := binary(t, "task_execution")
	db := filepath.Join(t.TempDir(), "t.db")
	s := start(t, bin, db)
	code, body, _ := s.do("GET", "/health", nil)
	if want := `{"status":"healthy","checks":{"database":{"state":"healthy"}}}`; code != http.StatusOK || string(body) != want {
		t.Errorf("/health = %d %s, want %s", code, body, want)
	}
	var info map[string]any
	s.decode("GET", "/api/v1/info", nil, http.StatusOK, &info)
	if info["display_name"] != "Task Execution Service" || info["version"] != "1.0.0" ||
		info["summary"] != "Example service demonstrating task execution with artifact-based result storage" {
		t.Errorf("info = %v", info)
	}
	var tasks []struct {
		ID      string  `json:"id"`
		Command string  `json:"command"`
		Params  *string `json:"parameters"`
	}
	s.decode("GET", "/api/v1/tasks", nil, http.StatusOK, &tasks)
	want := []string{"ls -la /tmp", `echo "Hello from task execution!"`, "date",
		`python3 -c "print(\"Python task execution works!\")"`, "ls /nonexistent/directory"}
	var got []string
	for i, tk := range tasks {
		got = append(got, tk.Command)
		if tk.ID != "01JCSEED0000000000000TASK"+string(rune('1'+i)) || tk.Params != nil {
			t.Errorf("seed %d = %+v", i, tk)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("seeded commands (-want +got):\n%s", diff)
	}
	if status, data := s.artifactData("01JCSEED0000000000000TASK5"); status != "completed" ||
		string(data["exit_code"]) == "0" || string(data["stderr"]) == `""` {
		t.Errorf("TASK5: job %s, artifact %s", status, data)
	}
	// Seeds are inserted only into an empty table: after a deletion and a
	// restart, the deleted seed stays deleted.
	s.decode("DELETE", "/api/v1/tasks/01JCSEED0000000000000TASK3", nil, http.StatusNoContent, nil)
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-s.done; err != nil {
		t.Fatalf("exit after SIGTERM: %v", err)
	}
	s2 := start(t, bin, db)
	code, _, _ = s2.do("GET", "/api/v1/tasks/01JCSEED0000000000000TASK3", nil)
	if code != http.StatusNotFound {
		t.Errorf("deleted seed after restart: %d, want 404", code)
	}
}
