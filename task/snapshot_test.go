package task

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// TestSnapshotReadsPerExecution counts the reads of a task's updated_at:
// an execution that starts with its submission reads the task once (the
// submission's read is its snapshot), one that waits for a slot reads it
// again when it starts, and so runs a version changed meanwhile.
func TestSnapshotReadsPerExecution(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 1})
	fifo := filepath.Join(t.TempDir(), "gate")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	tk := mustCreate(t, b.mgr, `{"command":"echo one"}`)
	gate := mustCreate(t, b.mgr, `{"command":"cat '`+fifo+`' > /dev/null"}`)

	before := b.mgr.stampReads.Load()
	if got := completedData(t, b, runTask(t, b, tk.ID))["stdout"]; got != "one\n" {
		t.Fatalf("stdout = %q, want one", got)
	}
	if n := b.mgr.stampReads.Load() - before; n != 1 {
		t.Errorf("an execution started with its submission read the task %d times, want 1", n)
	}

	// The gate holds the one slot, so the next execution waits.
	before = b.mgr.stampReads.Load()
	gateJob, err := b.mgr.Execute(t.Context(), gate.ID)
	if err != nil {
		t.Fatal(err)
	}
	waiting, err := b.mgr.Execute(t.Context(), tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	later := wire.Now().Add(time.Second)
	if err := b.db.Exec("UPDATE tasks SET command = ?, updated_at = ? WHERE id = ?", "echo two", later, tk.ID).Error; err != nil {
		t.Fatal(err)
	}
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0) // blocks until the gate job reads
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	completedData(t, b, waitJob(t, b, gateJob))
	if got := completedData(t, b, waitJob(t, b, waiting))["stdout"]; got != "two\n" {
		t.Errorf("an execution that waited ran %q, want the version changed while it waited", got)
	}
	// Two submissions, and one start that was not the submission's.
	if n := b.mgr.stampReads.Load() - before; n != 3 {
		t.Errorf("reads = %d, want 3 (two submissions and the waiting job's start)", n)
	}
}
