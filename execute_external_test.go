package chapkit_test

import (
	"context"
	"net/http"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func TestExecuteResponses(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("202 with job_id and message, no Location", func(t *testing.T) {
		id := shellTask(t, h, "echo hi")
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "")
		expect(t, rec, http.StatusAccepted, ctJSON, nil)
		got := object(t, rec.Body.Bytes())
		jobID, _ := got["job_id"].(string)
		if len(jobID) != 26 {
			t.Fatalf("job_id = %v, want a ULID", got["job_id"])
		}
		want := map[string]any{"job_id": jobID, "message": "Task submitted for execution. Job ID: " + jobID}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("body mismatch (-want +got):\n%s", diff)
		}
		if loc := rec.Header().Get("Location"); loc != "http://example.com/api/v1/jobs/"+jobID {
			t.Errorf("Location = %q, want the job's absolute URL", loc)
		}
		// The job is retrievable at once (item 35).
		job := getJob(t, h, jobID)
		switch job["status"] {
		case "pending", "running", "completed":
		default:
			t.Errorf("fresh job status = %v", job["status"])
		}
		if job["id"] != jobID || job["submitted_at"] == nil {
			t.Errorf("fresh job = %v", job)
		}
		waitJob(t, h, jobID)
	})

	t.Run("unknown task is 400 detail", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+unknownID+"/$execute", "", "")
		expect(t, rec, http.StatusBadRequest, ctJSON, detail("Task "+unknownID+" not found"))
	})

	t.Run("disabled task is 400 detail and submits nothing", func(t *testing.T) {
		id := createTask(t, h, `{"command":"echo no","enabled":false}`)["id"].(string)
		before := array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Body.Bytes())
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "")
		expect(t, rec, http.StatusBadRequest, ctJSON, detail("Cannot execute disabled task "+id))
		after := array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Body.Bytes())
		if len(after) != len(before) {
			t.Errorf("jobs went from %d to %d", len(before), len(after))
		}
	})

	t.Run("lowercase id is 400 problem", func(t *testing.T) {
		raw := strings.ToLower(unknownID)
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+raw+"/$execute", "", "")
		want := invalidULID("/api/v1/tasks", raw)
		want["instance"] = "/api/v1/tasks/" + raw + "/$execute"
		expect(t, rec, http.StatusBadRequest, ctProblem, want)
	})

	t.Run("unregistered function task is accepted and its job fails", func(t *testing.T) {
		id := createTask(t, h, `{"command":"missing_function","task_type":"python"}`)["id"].(string)
		job := waitJob(t, h, execute(t, h, id))
		if job["status"] != "failed" || job["error"] != "ValueError: Python function 'missing_function' not found in registry" ||
			job["artifact_id"] != nil || job["error_traceback"] == nil {
			t.Errorf("job = %v", job)
		}
	})
}

func TestShellResults(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("echo: artifact is exactly task, stdout, stderr, exit_code", func(t *testing.T) {
		taskID, job, data := runShell(t, h, "echo 'Hello World'")
		task := object(t, testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+taskID, "", "").Body.Bytes())
		want := map[string]any{
			"task": map[string]any{"id": taskID, "command": "echo 'Hello World'",
				"created_at": task["created_at"], "updated_at": task["updated_at"]},
			"stdout": "Hello World\n", "stderr": "", "exit_code": float64(0),
		}
		takeUsage(t, data, shellUsageKeys...)
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
		for _, k := range []string{"submitted_at", "started_at", "finished_at"} {
			if job[k] == nil {
				t.Errorf("completed job has null %s", k)
			}
		}
		if job["error"] != nil || job["error_traceback"] != nil || !isJobRecord(job) {
			t.Errorf("completed job = %v, want the 8 keys (and optionally node) with null errors", job)
		}
		// The artifact id resolves, and the artifact is a level-0 execution.
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts/"+job["artifact_id"].(string)+"/$expand", "", "")
		expanded := object(t, rec.Body.Bytes())
		if d, ok := expanded["data"].(map[string]any); !ok {
			t.Errorf("$expand data = %v, want an object", expanded["data"])
		} else {
			takeUsage(t, d, shellUsageKeys...)
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("$expand data mismatch (-want +got):\n%s", diff)
			}
		}
		// data is compared above, without its run-dependent keys.
		expect(t, rec, http.StatusOK, ctJSON, map[string]any{"id": job["artifact_id"], "parent_id": nil,
			"level": float64(0), "level_label": "execution", "hierarchy": "task_executions", "children": nil, "config": nil, "tags": []any{}},
			ignoreKeys("created_at", "updated_at", "data"))
	})

	tests := []struct {
		name    string
		command string
		stdout  string
		stderr  string
		exit    float64
	}{
		{"printf keeps lines", `printf 'Line 1\nLine 2\nLine 3'`, "Line 1\nLine 2\nLine 3", "", 0},
		{"stderr only", ">&2 echo 'error message'", "", "error message\n", 0},
		{"exit status", "echo out; exit 3", "out\n", "", 3},
		{"command not found is 127", "definitely-not-a-command-xyz 2>/dev/null", "", "", 127},
		{"signal death is -N", "kill -9 $$", "", "", -9},
		{"invalid UTF-8 becomes U+FFFD", `printf 'a\377b'`, "a\ufffdb", "", 0},
		{"stdin is empty", "cat", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, data := runShell(t, h, tc.command)
			got := map[string]any{"stdout": data["stdout"], "stderr": data["stderr"], "exit_code": data["exit_code"]}
			want := map[string]any{"stdout": tc.stdout, "stderr": tc.stderr, "exit_code": tc.exit}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s: output mismatch (-want +got):\n%s", tc.command, diff)
			}
			takeUsage(t, data, shellUsageKeys...)
			if len(data) != 4 {
				t.Errorf("artifact keys = %v, want exactly task/stdout/stderr/exit_code and the resource-use keys", keysOf(data))
			}
		})
	}

	t.Run("failing ls still completes with stderr", func(t *testing.T) {
		t.Parallel()
		_, _, data := runShell(t, h, "ls /this/path/does/not/exist")
		if data["exit_code"] == float64(0) || data["stderr"] == "" || data["stdout"] != "" {
			t.Errorf("data = %v, want non-zero exit, stderr text, empty stdout", data)
		}
	})

	t.Run("python3 -c print(2+2)", func(t *testing.T) {
		t.Parallel()
		if err := exec.Command("python3", "-c", "print(1)").Run(); err != nil {
			t.Skipf("python3 not usable: %v", err)
		}
		_, _, data := runShell(t, h, `python3 -c "print(2+2)"`)
		if data["stdout"] != "4\n" || data["exit_code"] != float64(0) {
			t.Errorf("data = %v", data)
		}
	})
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestExecutionsAreIndependent(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()

	t.Run("three executions give three jobs and three artifacts", func(t *testing.T) {
		id := shellTask(t, h, "echo same")
		jobs, arts := map[string]bool{}, map[string]bool{}
		var first map[string]any
		for range 3 {
			jobID := execute(t, h, id)
			job := waitJob(t, h, jobID)
			if job["status"] != "completed" {
				t.Fatalf("job = %v", job)
			}
			jobs[jobID], arts[job["artifact_id"].(string)] = true, true
			data := artifactData(t, h, job["artifact_id"].(string))
			takeUsage(t, data, shellUsageKeys...)
			if first == nil {
				first = data
			} else if diff := cmp.Diff(first, data); diff != "" {
				t.Errorf("artifacts differ (-first +this):\n%s", diff)
			}
		}
		if len(jobs) != 3 || len(arts) != 3 {
			t.Errorf("distinct jobs %d, artifacts %d, want 3 and 3", len(jobs), len(arts))
		}
	})

	t.Run("PUT after execution leaves the old snapshot", func(t *testing.T) {
		id := shellTask(t, h, "echo old")
		oldJob := waitJob(t, h, execute(t, h, id))
		rec := doJSON(t, h, http.MethodPut, "/api/v1/tasks/"+id, `{"command":"echo new"}`)
		if rec.Code != http.StatusOK {
			t.Fatalf("PUT status %d", rec.Code)
		}
		newJob := waitJob(t, h, execute(t, h, id))
		oldData := artifactData(t, h, oldJob["artifact_id"].(string))
		newData := artifactData(t, h, newJob["artifact_id"].(string))
		if oldData["task"].(map[string]any)["command"] != "echo old" || oldData["stdout"] != "old\n" {
			t.Errorf("old artifact changed: %v", oldData)
		}
		if newData["task"].(map[string]any)["command"] != "echo new" || newData["stdout"] != "new\n" {
			t.Errorf("new artifact = %v", newData)
		}
		if oldData["task"].(map[string]any)["updated_at"] == newData["task"].(map[string]any)["updated_at"] {
			t.Errorf("snapshots share updated_at %v across an update", newData["task"])
		}
	})

	t.Run("DELETE of the task keeps its artifacts", func(t *testing.T) {
		id := shellTask(t, h, "echo keep")
		job := waitJob(t, h, execute(t, h, id))
		if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/tasks/"+id, "", ""); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE status %d", rec.Code)
		}
		data := artifactData(t, h, job["artifact_id"].(string))
		snap := data["task"].(map[string]any)
		if snap["id"] != id || snap["command"] != "echo keep" || data["stdout"] != "keep\n" {
			t.Errorf("artifact after task deletion = %v", data)
		}
		if got := getJob(t, h, job["id"].(string)); got["status"] != "completed" {
			t.Errorf("job after task deletion = %v", got)
		}
	})

	t.Run("several tasks back to back all complete", func(t *testing.T) {
		var jobIDs []string
		for _, c := range []string{"echo task one", "echo task two", "echo task three"} {
			jobIDs = append(jobIDs, execute(t, h, shellTask(t, h, c)))
		}
		for _, j := range jobIDs {
			job := waitJob(t, h, j)
			data := artifactData(t, h, job["artifact_id"].(string))
			if !strings.Contains(data["stdout"].(string), "task") || data["exit_code"] != float64(0) {
				t.Errorf("data = %v", data)
			}
		}
	})
}

// TestTaskDeletedBeforeItsJobRuns: a queued job whose task is deleted
// fails with "ValueError: Task <id> not found" and writes no artifact.
func TestTaskDeletedBeforeItsJobRuns(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: 1})
	})
	h := app.Handler()
	blocker := execute(t, h, shellTask(t, h, "sleep 987601"))
	waitRunning(t, app, blocker)

	id := shellTask(t, h, "echo never")
	queued := execute(t, h, id)
	if got := getJob(t, h, queued); got["status"] != "pending" {
		t.Fatalf("queued job = %v, want pending behind the blocker", got)
	}
	if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/tasks/"+id, "", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE task: %d", rec.Code)
	}
	if rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+blocker+"/$cancel", "", ""); rec.Code != http.StatusAccepted {
		t.Fatalf("$cancel blocker: %d %s", rec.Code, rec.Body.String())
	}
	job := waitJob(t, h, queued)
	if job["status"] != "failed" || job["error"] != "ValueError: Task "+id+" not found" || job["artifact_id"] != nil {
		t.Errorf("job = %v", job)
	}
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts", "", ""), http.StatusOK, ctJSON, []any{})
}

// TestExecuteDuringDrain: once Shutdown began, $execute is 503 with
// Retry-After (docs/jobs.md, drain).
func TestExecuteDuringDrain(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	id := shellTask(t, h, "echo late")
	if err := app.Shutdown(t.Context()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "")
	expect(t, rec, http.StatusServiceUnavailable, ctProblem, nil)
	if rec.Header().Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if got := object(t, rec.Body.Bytes()); got["status"] != float64(503) {
		t.Errorf("body = %v", got)
	}
}

// TestFunctionTask runs a registered Go function through HTTP.
func TestFunctionTask(t *testing.T) {
	t.Parallel()
	type sumParams struct {
		A int `json:"a"`
		B int `json:"b"`
	}
	reg := registry.New()
	registry.MustRegister(reg, "calculate_sum", func(_ context.Context, p sumParams) (map[string]any, error) {
		return map[string]any{"result": p.A + p.B, "operation": "sum"}, nil
	})
	h := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithTasks(reg) }).Handler()
	task := createTask(t, h, `{"command":"calculate_sum","task_type":"python","parameters":{"a":15,"b":27}}`)
	job := waitJob(t, h, execute(t, h, task["id"].(string)))
	if job["status"] != "completed" {
		t.Fatalf("job = %v", job)
	}
	want := map[string]any{
		"task": map[string]any{"id": task["id"], "command": "calculate_sum", "task_type": "python",
			"parameters": map[string]any{"a": float64(15), "b": float64(27)},
			"created_at": task["created_at"], "updated_at": task["updated_at"]},
		"result": map[string]any{"result": float64(42), "operation": "sum"},
		"error":  nil,
	}
	data := artifactData(t, h, job["artifact_id"].(string))
	takeUsage(t, data, functionUsageKeys...)
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
	}
}
