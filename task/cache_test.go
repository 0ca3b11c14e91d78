package task

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/wire"
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
