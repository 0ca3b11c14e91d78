package chapkit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

const (
	ctJSON    = "application/json"
	ctProblem = "application/problem+json"
	ctSSE     = "text/event-stream; charset=utf-8"

	// unknownID is a valid ULID no test ever creates.
	unknownID = "01K72P5N5KCRM6MD3BRE4P0999"
)

// testHierarchy is the hierarchy task results are stored under.
var testHierarchy = artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}

// builderFor returns the builder of the standard test service: a SQLite
// file in t.TempDir(), health, system, artifacts, jobs (4 at once) and
// tasks with their own registry. The drain deadline is short so that a
// test that fails before cancelling its long job does not stall cleanup.
func builderFor(t testing.TB) *chapkit.ServiceBuilder {
	t.Helper()
	return chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
		WithDatabase(apptest.DBTarget(t)).
		WithHealth().WithSystem().
		WithArtifacts(testHierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 4, DrainTimeout: 5 * time.Second}).
		WithTasks(registry.New())
}

// newApp starts the standard test service; mods may replace options.
func newApp(t testing.TB, mods ...func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder) *chapkit.App {
	t.Helper()
	b := builderFor(t)
	for _, m := range mods {
		b = m(b)
	}
	return apptest.Start(t, b)
}

// serve runs h on a real HTTP server closed when the test ends.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

// doJSON sends body (if any) as application/json.
func doJSON(t testing.TB, h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	t.Helper()
	ct := ""
	if body != "" {
		ct = ctJSON
	}
	return testkit.Request(t, h, method, target, body, ct)
}

// decode parses a JSON body into generic values.
func decode(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode body %q: %v", truncate(string(b)), err)
	}
	return v
}

func truncate(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

// object decodes a JSON object body.
func object(t testing.TB, b []byte) map[string]any {
	t.Helper()
	m, ok := decode(t, b).(map[string]any)
	if !ok {
		t.Fatalf("body %q is not a JSON object", truncate(string(b)))
	}
	return m
}

// array decodes a JSON array body.
func array(t testing.TB, b []byte) []any {
	t.Helper()
	a, ok := decode(t, b).([]any)
	if !ok {
		t.Fatalf("body %q is not a JSON array", truncate(string(b)))
	}
	return a
}

// expect checks status, Content-Type and the decoded body of rec against
// want (nil want skips the body); opts apply to the comparison.
func expect(t testing.TB, rec *httptest.ResponseRecorder, status int, contentType string, want any, opts ...cmp.Option) {
	t.Helper()
	if rec.Code != status {
		t.Errorf("status = %d, want %d; body %s", rec.Code, status, truncate(rec.Body.String()))
	}
	if got := rec.Header().Get("Content-Type"); got != contentType {
		t.Errorf("Content-Type = %q, want %q", got, contentType)
	}
	if want == nil {
		return
	}
	if diff := cmp.Diff(want, decode(t, rec.Body.Bytes()), opts...); diff != "" {
		t.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

// ignoreKeys ignores the given map keys (ids, timestamps) in comparisons.
func ignoreKeys(keys ...string) cmp.Option {
	return cmpopts.IgnoreMapEntries(func(k string, _ any) bool {
		for _, key := range keys {
			if k == key {
				return true
			}
		}
		return false
	})
}

// createTask posts body and returns the created task.
func createTask(t testing.TB, h http.Handler, body string) map[string]any {
	t.Helper()
	rec := doJSON(t, h, http.MethodPost, "/api/v1/tasks", body)
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST /api/v1/tasks %s: status %d, body %s", body, rec.Code, rec.Body.String())
	}
	return object(t, rec.Body.Bytes())
}

// shellTask creates an enabled shell task and returns its id.
func shellTask(t testing.TB, h http.Handler, command string) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"command": command})
	return createTask(t, h, string(b))["id"].(string)
}

// execute runs task id and returns the job id.
func execute(t testing.TB, h http.Handler, id string) string {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "")
	if rec.Code != http.StatusAccepted {
		t.Fatalf("$execute %s: status %d, body %s", id, rec.Code, rec.Body.String())
	}
	return object(t, rec.Body.Bytes())["job_id"].(string)
}

// getJob returns the job record, failing unless it is 200.
func getJob(t testing.TB, h http.Handler, id string) map[string]any {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+id, "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET job %s: status %d, body %s", id, rec.Code, rec.Body.String())
	}
	return object(t, rec.Body.Bytes())
}

// waitJob polls the job until it is terminal and returns its record.
func waitJob(t testing.TB, h http.Handler, id string) map[string]any {
	t.Helper()
	return testkit.WaitJob(t, h, "/api/v1/jobs", id)
}

// waitRunning polls the job until it runs and has recorded its process
// group, and returns the group id.
func waitRunning(t testing.TB, app *chapkit.App, id string) int {
	t.Helper()
	var pgid int
	testkit.Eventually(t, testkit.Deadline, "job "+id+" to run its process", func() bool {
		j, err := app.Scheduler().Get(t.Context(), id)
		if err != nil {
			t.Fatalf("Scheduler().Get(%s): %v", id, err)
		}
		if j.Status == "running" && j.PGID != nil {
			pgid = *j.PGID
			return true
		}
		return false
	})
	return pgid
}

// artifactData returns the data of artifact id.
func artifactData(t testing.TB, h http.Handler, id string) map[string]any {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts/"+id, "", "")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET artifact %s: status %d, body %s", id, rec.Code, rec.Body.String())
	}
	data, ok := object(t, rec.Body.Bytes())["data"].(map[string]any)
	if !ok {
		t.Fatalf("artifact %s data is not an object: %s", id, rec.Body.String())
	}
	return data
}

// runShell creates a shell task for command, executes it, waits for the
// job and returns the completed job and its artifact data.
func runShell(t testing.TB, h http.Handler, command string) (taskID string, job, data map[string]any) {
	t.Helper()
	taskID = shellTask(t, h, command)
	job = waitJob(t, h, execute(t, h, taskID))
	if job["status"] != "completed" {
		t.Fatalf("job of %q: status %v, error %v", command, job["status"], job["error"])
	}
	id, ok := job["artifact_id"].(string)
	if !ok {
		t.Fatalf("completed job of %q has no artifact_id: %v", command, job)
	}
	return taskID, job, artifactData(t, h, id)
}

// groupAlive reports whether a live (not zombie) process is in process
// group pgid, by scanning /proc.
func groupAlive(t testing.TB, pgid int) bool {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if f[2] == strconv.Itoa(pgid) {
			return true
		}
	}
	return false
}

// commandAlive reports whether a live process has exactly this command line.
func commandAlive(t testing.TB, argv ...string) bool {
	t.Helper()
	want := strings.Join(argv, "\x00")
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.TrimRight(string(b), "\x00") == want {
			return true
		}
	}
	return false
}

// seedTask is an enabled shell task for chapkit.SeedTasks.
func seedTask(id, command string) task.In {
	return task.In{ID: id, Command: command, TaskType: task.TypeShell, Enabled: true}
}

// shellUsageKeys are the resource-use keys of a shell artifact, and
// functionUsageKeys those of a function artifact: their values differ from
// run to run, so tests check them apart from the rest.
var (
	shellUsageKeys    = []string{"duration_seconds", "cpu_user_seconds", "cpu_system_seconds", "max_rss_bytes"}
	functionUsageKeys = []string{"duration_seconds"}
)

// takeUsage checks that data holds each of keys as a non-negative number
// and removes them, leaving what is the same for every run.
func takeUsage(t testing.TB, data map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		v, ok := data[k].(float64)
		if !ok || v < 0 {
			t.Errorf("artifact %s = %#v, want a non-negative number", k, data[k])
		}
		delete(data, k)
	}
}

// jobRecordKeys are the keys every job record has.
var jobRecordKeys = []string{"id", "status", "submitted_at", "started_at", "finished_at", "error", "error_traceback", "artifact_id"}

// isJobRecord reports whether rec has exactly the job record keys, plus
// optionally "node" (a string, present once a node claimed the job),
// "trigger" (one of "api", "schedule", "retry"), "retry_of" (a job id)
// and "attempt" (a positive number, on jobs of a retry chain).
func isJobRecord(rec map[string]any) bool {
	n := len(jobRecordKeys)
	if node, ok := rec["node"]; ok {
		if _, isString := node.(string); !isString {
			return false
		}
		n++
	}
	if trigger, ok := rec["trigger"]; ok {
		if trigger != "api" && trigger != "schedule" && trigger != "retry" {
			return false
		}
		n++
	}
	if first, ok := rec["retry_of"]; ok {
		if s, isString := first.(string); !isString || len(s) != 26 {
			return false
		}
		n++
	}
	if attempt, ok := rec["attempt"]; ok {
		if a, isNumber := attempt.(float64); !isNumber || a < 1 {
			return false
		}
		n++
	}
	for _, k := range jobRecordKeys {
		if _, ok := rec[k]; !ok {
			return false
		}
	}
	return len(rec) == n
}
