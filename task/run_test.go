package task

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/jsonsafe"
	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// shellSnap is the expected "task" member of a shell artifact.
func shellSnap(t *Task) map[string]any {
	return map[string]any{"id": t.ID, "command": t.Command,
		"created_at": wire.FormatTime(t.CreatedAt), "updated_at": wire.FormatTime(t.UpdatedAt)}
}

// functionSnap is the expected "task" member of a function artifact.
func functionSnap(tb testing.TB, t *Task) map[string]any {
	tb.Helper()
	var params any
	if len(t.Parameters) > 0 {
		if err := json.Unmarshal(t.Parameters, &params); err != nil {
			tb.Fatal(err)
		}
	}
	return map[string]any{"id": t.ID, "command": t.Command, "task_type": t.TaskType, "parameters": params,
		"created_at": wire.FormatTime(t.CreatedAt), "updated_at": wire.FormatTime(t.UpdatedAt)}
}

func TestShellExecution(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 4})

	tests := []struct {
		name    string
		command string
		stdout  string
		stderr  string
		exit    float64
	}{
		{"echo", "echo 'Hello World'", "Hello World\n", "", 0},
		{"several lines", `printf 'Line 1\nLine 2\nLine 3'`, "Line 1\nLine 2\nLine 3", "", 0},
		{"stderr only", ">&2 echo 'error message'", "", "error message\n", 0},
		{"no output", "true", "", "", 0},
		{"non-zero exit still completes", "echo out; echo err >&2; exit 3", "out\n", "err\n", 3},
		{"command not found", "definitely-not-a-command-xyz 2>/dev/null", "", "", 127},
		{"killed by a signal", "kill -TERM $$", "", "", -15},
		{"invalid UTF-8 replaced", `printf 'a\377b'`, "a\ufffdb", "", 0},
		{"stdin is empty", "cat", "", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := mustCreate(t, b.mgr, `{"command":`+jsonString(tc.command)+`}`)
			data := completedData(t, b, runTask(t, b, task.ID))
			want := map[string]any{"task": shellSnap(task), "stdout": tc.stdout, "stderr": tc.stderr, "exit_code": tc.exit}
			if diff := cmp.Diff(want, data); diff != "" {
				t.Errorf("artifact data of %q mismatch (-want +got):\n%s", tc.command, diff)
			}
		})
	}

	t.Run("missing path writes to stderr", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"ls /this/path/does/not/exist"}`)
		data := completedData(t, b, runTask(t, b, task.ID))
		if data["exit_code"] == 0.0 || data["stderr"] == "" {
			t.Errorf("exit_code = %v, stderr = %q; want non-zero and non-empty", data["exit_code"], data["stderr"])
		}
	})

	t.Run("shell snapshot ignores type and parameters", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"echo p","parameters":{"a":1},"timeout_seconds":60}`)
		data := completedData(t, b, runTask(t, b, task.ID))
		want := map[string]any{"task": shellSnap(task), "stdout": "p\n", "stderr": "", "exit_code": 0.0}
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("job is completed with timestamps", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"echo hi"}`)
		j := runTask(t, b, task.ID)
		if j.Status != job.StatusCompleted || j.StartedAt == nil || j.FinishedAt == nil || j.Error != nil {
			t.Errorf("job = status %s started %v finished %v error %v, want completed with both times and no error",
				j.Status, j.StartedAt, j.FinishedAt, deref(j.Error))
		}
	})

	t.Run("each execution has its own artifact", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"echo same"}`)
		seen := map[string]bool{}
		var first map[string]any
		for range 3 {
			j := runTask(t, b, task.ID)
			data := completedData(t, b, j)
			if seen[*j.ArtifactID] {
				t.Errorf("artifact %s reused", *j.ArtifactID)
			}
			seen[*j.ArtifactID] = true
			if first == nil {
				first = data
			} else if diff := cmp.Diff(first, data); diff != "" {
				t.Errorf("repeated execution data differs (-first +later):\n%s", diff)
			}
		}
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestShellOutputCap(t *testing.T) {
	b := setup(t, setupOpts{maxOutput: 16})
	tests := []struct {
		name    string
		command string
		want    map[string]any // without "task"
	}{
		{"under the cap", "printf 0123456789abcdef; printf 0123456789abcdef >&2",
			map[string]any{"stdout": "0123456789abcdef", "stderr": "0123456789abcdef", "exit_code": 0.0}},
		{"stdout over the cap", "printf '%040d' 7",
			map[string]any{"stdout": "00000000\n[... 24 bytes of output dropped ...]\n00000007", "stderr": "", "exit_code": 0.0, "stdout_truncated": true}},
		{"stderr over the cap", "printf '%040d' 7 >&2; exit 2",
			map[string]any{"stdout": "", "stderr": "00000000\n[... 24 bytes of output dropped ...]\n00000007", "exit_code": 2.0, "stderr_truncated": true}},
		{"both over the cap", "printf '%040d' 1; printf '%040d' 2 >&2",
			map[string]any{"stdout": "00000000\n[... 24 bytes of output dropped ...]\n00000001", "stderr": "00000000\n[... 24 bytes of output dropped ...]\n00000002", "exit_code": 0.0, "stdout_truncated": true, "stderr_truncated": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := mustCreate(t, b.mgr, `{"command":`+jsonString(tc.command)+`}`)
			data := completedData(t, b, runTask(t, b, task.ID))
			tc.want["task"] = shellSnap(task)
			if diff := cmp.Diff(tc.want, data); diff != "" {
				t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShellTimeout(t *testing.T) {
	b := setup(t, setupOpts{})
	task := mustCreate(t, b.mgr, `{"command":"sleep 30","timeout_seconds":1}`)
	start := time.Now()
	data := completedData(t, b, runTask(t, b, task.ID))
	if elapsed := time.Since(start); elapsed > 15*time.Second {
		t.Errorf("timed-out task took %v", elapsed)
	}
	want := map[string]any{"task": shellSnap(task), "stdout": "", "stderr": "", "exit_code": -9.0, "timed_out": true}
	if diff := cmp.Diff(want, data); diff != "" {
		t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
	}
}

func TestShellCancel(t *testing.T) {
	b := setup(t, setupOpts{})
	task := mustCreate(t, b.mgr, `{"command":"sleep 1000"}`)
	jobID, err := b.mgr.Execute(t.Context(), task.ID)
	if err != nil {
		t.Fatal(err)
	}
	var pgid int
	testkit.Eventually(t, 10*time.Second, "the shell job to record its process group", func() bool {
		j, err := b.sched.Get(context.Background(), jobID)
		if err != nil || j.Status != job.StatusRunning || j.PGID == nil {
			return false
		}
		pgid = *j.PGID
		return true
	})
	if _, err := b.sched.Cancel(t.Context(), jobID); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	j := waitJob(t, b, jobID)
	if j.Status != job.StatusCanceled || j.FinishedAt == nil || j.ArtifactID != nil {
		t.Errorf("job = status %s finished %v artifact %v, want canceled, finished, no artifact", j.Status, j.FinishedAt, deref(j.ArtifactID))
	}
	testkit.Eventually(t, 10*time.Second, "the process group to die", func() bool { return !shell.GroupAlive(pgid) })
	if n := countArtifacts(t, b); n != 0 {
		t.Errorf("artifacts = %d, want none for a cancelled job", n)
	}
}

// gate holds a function task until the test opens it.
type gate struct {
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}, 1), release: make(chan struct{})} }

// register adds the "block" function, which waits for the gate.
func (g *gate) register(tb testing.TB, reg *registry.Registry) {
	err := registry.Register(reg, "block", func(ctx context.Context, _ struct{}) (string, error) {
		g.started <- struct{}{}
		select {
		case <-g.release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// hold occupies the only slot of a MaxConcurrency 1 scheduler until the
// returned function is called; it returns the blocking job's id.
func (g *gate) hold(tb testing.TB, b *testBundle) (string, func()) {
	tb.Helper()
	blocker := mustCreate(tb, b.mgr, `{"command":"block","task_type":"python"}`)
	jobID, err := b.mgr.Execute(context.Background(), blocker.ID)
	if err != nil {
		tb.Fatal(err)
	}
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		tb.Fatal("blocking job did not start")
	}
	var once sync.Once
	open := func() { once.Do(func() { close(g.release) }) }
	tb.Cleanup(open)
	return jobID, open
}

func TestQueuedExecution(t *testing.T) {
	t.Run("task deleted before the job runs", func(t *testing.T) {
		g := newGate()
		b := setup(t, setupOpts{maxConcurrency: 1, register: g.register})
		blockerJob, open := g.hold(t, b)
		task := mustCreate(t, b.mgr, `{"command":"echo never"}`)
		jobID, err := b.mgr.Execute(t.Context(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.mgr.Delete(t.Context(), task.ID); err != nil {
			t.Fatal(err)
		}
		open()
		completedData(t, b, waitJob(t, b, blockerJob))
		j := waitJob(t, b, jobID)
		wantErr := "ValueError: Task " + task.ID + " not found"
		if j.Status != job.StatusFailed || deref(j.Error) != wantErr || j.ArtifactID != nil {
			t.Errorf("job = status %s error %v artifact %v, want failed %q without artifact", j.Status, deref(j.Error), deref(j.ArtifactID), wantErr)
		}
		if n := countArtifacts(t, b); n != 1 {
			t.Errorf("artifacts = %d, want only the blocking job's", n)
		}
	})

	t.Run("snapshot taken when the job starts", func(t *testing.T) {
		g := newGate()
		b := setup(t, setupOpts{maxConcurrency: 1, register: g.register})
		blockerJob, open := g.hold(t, b)
		task := mustCreate(t, b.mgr, `{"command":"echo old"}`)
		jobID, err := b.mgr.Execute(t.Context(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		// Editing and disabling the task does not stop the queued job; it
		// runs the command the task has when it starts.
		backdate(t, b.mgr, task.ID)
		updated, err := b.mgr.Update(t.Context(), task.ID, mustIn(t, `{"command":"echo new","enabled":false}`))
		if err != nil {
			t.Fatal(err)
		}
		open()
		waitJob(t, b, blockerJob)
		data := completedData(t, b, waitJob(t, b, jobID))
		want := map[string]any{"task": shellSnap(updated), "stdout": "new\n", "stderr": "", "exit_code": 0.0}
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("dispatch by the type at submission", func(t *testing.T) {
		g := newGate()
		b := setup(t, setupOpts{maxConcurrency: 1, register: g.register})
		blockerJob, open := g.hold(t, b)
		task := mustCreate(t, b.mgr, `{"command":"echo typed"}`)
		jobID, err := b.mgr.Execute(t.Context(), task.ID)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := b.mgr.Patch(t.Context(), task.ID, json.RawMessage(`{"task_type":"python"}`))
		if err != nil {
			t.Fatal(err)
		}
		open()
		waitJob(t, b, blockerJob)
		data := completedData(t, b, waitJob(t, b, jobID))
		want := map[string]any{"task": shellSnap(patched), "stdout": "typed\n", "stderr": "", "exit_code": 0.0}
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestSnapshotPreservation(t *testing.T) {
	b := setup(t, setupOpts{})
	task := mustCreate(t, b.mgr, `{"command":"echo first"}`)
	oldJob := runTask(t, b, task.ID)
	oldData := completedData(t, b, oldJob)

	backdate(t, b.mgr, task.ID)
	updated, err := b.mgr.Update(t.Context(), task.ID, mustIn(t, `{"command":"echo second"}`))
	if err != nil {
		t.Fatal(err)
	}
	newData := completedData(t, b, runTask(t, b, task.ID))
	want := map[string]any{"task": shellSnap(updated), "stdout": "second\n", "stderr": "", "exit_code": 0.0}
	if diff := cmp.Diff(want, newData); diff != "" {
		t.Errorf("new execution mismatch (-want +got):\n%s", diff)
	}

	if err := b.mgr.Delete(t.Context(), task.ID); err != nil {
		t.Fatal(err)
	}
	again := completedData(t, b, oldJob)
	want = map[string]any{"task": shellSnap(task), "stdout": "first\n", "stderr": "", "exit_code": 0.0}
	for name, data := range map[string]map[string]any{"before the update": oldData, "after update and delete": again} {
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("old artifact %s mismatch (-want +got):\n%s", name, diff)
		}
	}
}

type sumParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

type greetParams struct {
	Name string `json:"name"`
}

type dbDeps struct {
	DB *gorm.DB
}

// registerFunctions adds the functions the function-task tests call.
func registerFunctions(tb testing.TB, reg *registry.Registry) {
	tb.Helper()
	errs := []error{
		registry.Register(reg, "calculate_sum", func(_ context.Context, p sumParams) (map[string]any, error) {
			return map[string]any{"result": p.A + p.B, "operation": "sum"}, nil
		}),
		registry.Register(reg, "designed_to_fail", func(context.Context, struct{}) (any, error) {
			return nil, registry.NewError("ValueError", "This task was designed to fail")
		}),
		registry.Register(reg, "panics", func(context.Context, struct{}) (any, error) {
			panic("something broke")
		}),
		registry.Register(reg, "greet", func(_ context.Context, p greetParams) (string, error) {
			return "Hello, " + p.Name, nil
		}),
		registry.Register(reg, "echo_params", func(_ context.Context, p map[string]any) (map[string]any, error) {
			return p, nil
		}),
		registry.Register(reg, "nothing", func(context.Context, struct{}) (any, error) { return nil, nil }),
		registry.RegisterWith(reg, "count_tasks", func(ctx context.Context, _ struct{}, d dbDeps) (map[string]any, error) {
			var n int64
			err := d.DB.WithContext(ctx).Model(&Task{}).Count(&n).Error
			return map[string]any{"count": n, "has_session": d.DB != nil}, err
		}),
		registry.Register(reg, "make_chan", func(context.Context, struct{}) (chan int, error) { return make(chan int), nil }),
		registry.Register(reg, "wait_for_ctx", func(ctx context.Context, _ struct{}) (string, error) {
			<-ctx.Done()
			return "", ctx.Err()
		}),
	}
	if err := errors.Join(errs...); err != nil {
		tb.Fatal(err)
	}
}

func TestFunctionExecution(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 4, register: registerFunctions})

	tests := []struct {
		name   string
		body   string
		result any
	}{
		{"sum", `{"command":"calculate_sum","task_type":"python","parameters":{"a":15,"b":27}}`,
			map[string]any{"result": 42.0, "operation": "sum"}},
		{"function alias", `{"command":"calculate_sum","task_type":"function","parameters":{"a":1,"b":1}}`,
			map[string]any{"result": 2.0, "operation": "sum"}},
		{"whole parameters object", `{"command":"echo_params","task_type":"python","parameters":{"s":"x","n":[1,2]}}`,
			map[string]any{"s": "x", "n": []any{1.0, 2.0}}},
		{"no parameters", `{"command":"echo_params","task_type":"python"}`, map[string]any{}},
		{"null result", `{"command":"nothing","task_type":"python"}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := mustCreate(t, b.mgr, tc.body)
			data := completedData(t, b, runTask(t, b, task.ID))
			want := map[string]any{"task": functionSnap(t, task), "result": tc.result, "error": nil}
			if diff := cmp.Diff(want, data); diff != "" {
				t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("injected database", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"count_tasks","task_type":"python","parameters":{}}`)
		n, err := b.mgr.Count(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		data := completedData(t, b, runTask(t, b, task.ID))
		want := map[string]any{"task": functionSnap(t, task), "result": map[string]any{"count": float64(n), "has_session": true}, "error": nil}
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
	})

	errorTests := []struct {
		name    string
		body    string
		typ     string
		message string
	}{
		{"returned error", `{"command":"designed_to_fail","task_type":"python"}`, "ValueError", "This task was designed to fail"},
		{"panic", `{"command":"panics","task_type":"python"}`, "panic", "something broke"},
		{"missing required parameter", `{"command":"greet","task_type":"python","parameters":{}}`, "ValueError",
			"Missing required parameter 'name' for task function. Parameter is not injectable and not provided in task.parameters."},
		{"unexpected parameter", `{"command":"greet","task_type":"python","parameters":{"name":"a","extra":1}}`, "TypeError",
			"unexpected parameter 'extra'"},
	}
	for _, tc := range errorTests {
		t.Run(tc.name, func(t *testing.T) {
			task := mustCreate(t, b.mgr, tc.body)
			data := completedData(t, b, runTask(t, b, task.ID))
			errObj, _ := data["error"].(map[string]any)
			if tb, _ := errObj["traceback"].(string); tb == "" {
				t.Errorf("error.traceback = %v, want a stack text", errObj["traceback"])
			}
			want := map[string]any{"task": functionSnap(t, task), "result": nil,
				"error": map[string]any{"type": tc.typ, "message": tc.message, "traceback": errObj["traceback"]}}
			if diff := cmp.Diff(want, data); diff != "" {
				t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("non-JSON result replaced by metadata", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"make_chan","task_type":"python"}`)
		data := completedData(t, b, runTask(t, b, task.ID))
		result, _ := data["result"].(map[string]any)
		if repr, _ := result["_repr"].(string); !strings.Contains(repr, "chan int") {
			t.Errorf("result._repr = %v, want the Go syntax of the channel", result["_repr"])
		}
		want := map[string]any{"task": functionSnap(t, task), "error": nil, "result": map[string]any{
			"_type": "chan int", "_module": result["_module"], "_repr": result["_repr"], "_serialization_error": jsonsafe.ShortText,
		}}
		if diff := cmp.Diff(want, data); diff != "" {
			t.Errorf("artifact data mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("unregistered function fails the job", func(t *testing.T) {
		task := mustCreate(t, b.mgr, `{"command":"missing_function","task_type":"python"}`)
		before := countArtifacts(t, b)
		j := runTask(t, b, task.ID)
		wantErr := "ValueError: Python function 'missing_function' not found in registry"
		if j.Status != job.StatusFailed || deref(j.Error) != wantErr || j.ArtifactID != nil {
			t.Errorf("job = status %s error %v artifact %v, want failed %q without artifact", j.Status, deref(j.Error), deref(j.ArtifactID), wantErr)
		}
		if after := countArtifacts(t, b); after != before {
			t.Errorf("artifacts %d -> %d, want none added", before, after)
		}
	})
}

func TestFunctionTimeout(t *testing.T) {
	b := setup(t, setupOpts{register: registerFunctions})
	task := mustCreate(t, b.mgr, `{"command":"wait_for_ctx","task_type":"python","timeout_seconds":1}`)
	data := completedData(t, b, runTask(t, b, task.ID))
	errObj, _ := data["error"].(map[string]any)
	if errObj["type"] != "TimeoutError" || data["result"] != nil {
		t.Errorf("artifact result = %v, error = %v; want null and a TimeoutError", data["result"], errObj)
	}
	if msg, _ := errObj["message"].(string); !strings.Contains(msg, "timed out") {
		t.Errorf("error.message = %q, want it to say the task timed out", msg)
	}
}

func TestConcurrentExecutions(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 8})
	task := mustCreate(t, b.mgr, `{"command":"echo concurrent"}`)
	const n = 64
	jobIDs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { jobIDs[i], errs[i] = b.mgr.Execute(context.Background(), task.ID) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"task": shellSnap(task), "stdout": "concurrent\n", "stderr": "", "exit_code": 0.0}
	var artifacts []string
	for _, id := range jobIDs {
		j := waitJob(t, b, id)
		if diff := cmp.Diff(want, completedData(t, b, j)); diff != "" {
			t.Errorf("job %s artifact data mismatch (-want +got):\n%s", id, diff)
		}
		if j.ArtifactID != nil {
			artifacts = append(artifacts, *j.ArtifactID)
		}
	}
	slices.Sort(artifacts)
	if got := len(slices.Compact(artifacts)); got != n {
		t.Errorf("distinct artifacts = %d, want %d", got, n)
	}
	if got := countArtifacts(t, b); got != n {
		t.Errorf("artifact rows = %d, want %d", got, n)
	}
}

func TestRunJobWithoutArtifacts(t *testing.T) {
	m, _ := newStore(t)
	task := mustCreate(t, m, `{"command":"echo hi"}`)
	args, err := json.Marshal(jobArgs{TaskID: task.ID, TaskType: TypeShell})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.RunJob(t.Context(), &job.Run{Job: &job.Job{ID: wire.NewID(), Kind: JobKind, Args: args}})
	if err == nil {
		t.Fatal("RunJob without an artifact store succeeded")
	}
	got := registry.ErrorType(err) + ": " + err.Error()
	if want := "RuntimeError: ArtifactManager instance required for task execution"; got != want {
		t.Errorf("RunJob error = %q, want %q", got, want)
	}
}
