package task

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
)

// TestExecutionSeesChangesMadeElsewhere changes a task in the database
// directly, as another node (or the Python service) would, and checks that
// the next execution runs and records the changed task, and that a task
// deleted elsewhere is refused: the cache of executed tasks never hides a
// change.
func TestExecutionSeesChangesMadeElsewhere(t *testing.T) {
	b := setup(t, setupOpts{})
	tk := mustCreate(t, b.mgr, `{"command":"echo first"}`)
	first := completedData(t, b, runTask(t, b, tk.ID))
	if first["stdout"] != "first\n" {
		t.Fatalf("first execution stdout = %q", first["stdout"])
	}

	later := wire.Now().Add(time.Second)
	if err := b.db.Exec("UPDATE tasks SET command = ?, updated_at = ? WHERE id = ?", "echo second", later, tk.ID).Error; err != nil {
		t.Fatal(err)
	}
	second := completedData(t, b, runTask(t, b, tk.ID))
	want := map[string]any{"task": map[string]any{"id": tk.ID, "command": "echo second",
		"created_at": wire.FormatTime(tk.CreatedAt), "updated_at": wire.FormatTime(later)},
		"stdout": "second\n", "stderr": "", "exit_code": 0.0}
	if diff := cmp.Diff(want, second); diff != "" {
		t.Errorf("execution after an outside change (-want +got):\n%s", diff)
	}

	if err := b.db.Exec("DELETE FROM tasks WHERE id = ?", tk.ID).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := b.mgr.Execute(t.Context(), tk.ID); err == nil {
		t.Error("Execute of a task deleted elsewhere succeeded")
	}
}

// TestExecuteMany submits executions of several tasks in one call: each
// completes with its own artifact, in the order given; a batch naming a
// disabled or unknown task is refused whole, naming that task.
func TestExecuteMany(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 2})
	one := mustCreate(t, b.mgr, `{"command":"echo one"}`)
	two := mustCreate(t, b.mgr, `{"command":"echo two"}`)
	off := mustCreate(t, b.mgr, `{"command":"echo off","enabled":false}`)

	for _, bad := range []string{off.ID, "01K72P5N5KCRM6MD3BRE4P0999"} {
		if _, err := b.mgr.ExecuteMany(t.Context(), []string{one.ID, bad, two.ID}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ExecuteMany with %s = %v, want an error naming it", bad, err)
		}
	}
	var jobs int64
	if err := b.db.Model(&job.Job{}).Count(&jobs).Error; err != nil || jobs != 0 {
		t.Fatalf("%d jobs stored after refused batches (%v), want none", jobs, err)
	}

	order := []*Task{one, two, one, two, one}
	ids := make([]string, len(order))
	for i, tk := range order {
		ids[i] = tk.ID
	}
	jobIDs, err := b.mgr.ExecuteMany(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobIDs) != len(order) {
		t.Fatalf("ExecuteMany returned %d job ids, want %d", len(jobIDs), len(order))
	}
	for i, id := range jobIDs {
		data := completedData(t, b, waitJob(t, b, id))
		if want := strings.TrimPrefix(order[i].Command, "echo ") + "\n"; data["stdout"] != want {
			t.Errorf("execution %d stdout = %q, want %q", i, data["stdout"], want)
		}
	}
	if n := countArtifacts(t, b); n != int64(len(order)) {
		t.Errorf("%d artifacts, want %d", n, len(order))
	}
	if empty, err := b.mgr.ExecuteMany(t.Context(), nil); err != nil || len(empty) != 0 {
		t.Errorf("ExecuteMany(nil) = %v, %v; want nothing", empty, err)
	}
}

// TestShortShellJobWritesNoProcessGroup checks that a command ending
// before processGroupDelay costs no write of its process group, while one
// running longer records it.
func TestShortShellJobWritesNoProcessGroup(t *testing.T) {
	b := setup(t, setupOpts{})
	stored := func(j *job.Job) *job.Job {
		t.Helper()
		got, err := b.sched.Get(t.Context(), j.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	quick := stored(runTask(t, b, mustCreate(t, b.mgr, `{"command":"true"}`).ID))
	if quick.Status != job.StatusCompleted || quick.PGID != nil {
		t.Errorf("quick shell job = %s with pgid %v, want completed without one", quick.Status, deref(quick.PGID))
	}
	slow := stored(runTask(t, b, mustCreate(t, b.mgr, `{"command":"sleep 0.8"}`).ID))
	if slow.Status != job.StatusCompleted || slow.PGID == nil {
		t.Errorf("slow shell job = %s with pgid %v, want completed with one", slow.Status, deref(slow.PGID))
	}
}
