package chapkit_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func TestShellOutputFlood(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	_, _, data := runShell(t, h, `head -c 3000000 /dev/zero | tr '\0' x`)
	stdout, _ := data["stdout"].(string)
	// Past the 1 MiB cap the head and the tail are kept, half each, with a
	// marker line between them counting the bytes left out.
	half := strings.Repeat("x", 1<<19)
	if want := half + "\n[... 1951424 bytes of output dropped ...]\n" + half; stdout != want {
		t.Errorf("stdout has %d bytes (starts %q, ends %q), want 512 KiB of x, the marker line and 512 KiB of x",
			len(stdout), truncate(stdout[:min(len(stdout), 64)]), stdout[max(0, len(stdout)-64):])
	}
	if data["stdout_truncated"] != true || data["exit_code"] != float64(0) || data["stderr"] != "" {
		t.Errorf("stdout_truncated=%v exit_code=%v stderr=%q", data["stdout_truncated"], data["exit_code"], data["stderr"])
	}
	if _, ok := data["stderr_truncated"]; ok {
		t.Errorf("stderr_truncated present for a short stderr")
	}
	if _, ok := data["timed_out"]; ok {
		t.Errorf("timed_out present without a timeout")
	}
}

// TestShellOutputFloodKeepsLastLine: the line that says what went wrong
// comes last, after the flood, and survives the cut.
func TestShellOutputFloodKeepsLastLine(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	_, _, data := runShell(t, h, `head -c 3000000 /dev/zero | tr '\0' e >&2; echo 'fatal: disk full' >&2; exit 2`)
	stderr, _ := data["stderr"].(string)
	if !strings.HasSuffix(stderr, "efatal: disk full\n") || !strings.Contains(stderr, "\n[... 1951441 bytes of output dropped ...]\n") {
		t.Errorf("stderr (%d bytes) ends %q, want the marker line and the final error line", len(stderr), stderr[max(0, len(stderr)-64):])
	}
	if data["stderr_truncated"] != true || data["exit_code"] != float64(2) {
		t.Errorf("stderr_truncated=%v exit_code=%v", data["stderr_truncated"], data["exit_code"])
	}
}

func TestConcurrentExecutions(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	srv := serve(t, h)
	client := srv.Client()
	id := shellTask(t, h, "echo concurrent")

	const n = 64
	jobIDs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := client.Post(srv.URL+"/api/v1/tasks/"+id+"/$execute", "", nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			var body struct {
				JobID string `json:"job_id"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusAccepted {
				errs[i] = fmt.Errorf("status %d, decode error %v", resp.StatusCode, err)
				return
			}
			jobIDs[i] = body.JobID
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("$execute %d: %v", i, err)
		}
	}
	jobs, arts := map[string]bool{}, map[string]bool{}
	for _, j := range jobIDs {
		job := waitJob(t, h, j)
		if job["status"] != "completed" {
			t.Fatalf("job %s = %v", j, job)
		}
		jobs[j], arts[job["artifact_id"].(string)] = true, true
	}
	if len(jobs) != n || len(arts) != n {
		t.Errorf("%d distinct jobs and %d distinct artifacts, want %d each", len(jobs), len(arts), n)
	}
	if got := len(array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts", "", "").Body.Bytes())); got != n {
		t.Errorf("%d artifacts stored, want %d", got, n)
	}
}

// TestCancelNeverExitingCommand: $cancel of a command that would run for
// days kills its whole process group, grandchildren included.
func TestCancelNeverExitingCommand(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	// The background sleep is a grandchild in the same group.
	id := execute(t, h, shellTask(t, h, "sleep 987654 & sleep 987655; wait"))
	pgid := waitRunning(t, app, id)
	testkit.Eventually(t, testkit.Deadline, "both sleeps to start", func() bool {
		return commandAlive(t, "sleep", "987654") && commandAlive(t, "sleep", "987655")
	})
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", "")
	expect(t, rec, http.StatusAccepted, ctJSON, nil)
	if got := object(t, rec.Body.Bytes()); got["status"] != "canceled" || got["finished_at"] == nil || got["artifact_id"] != nil {
		t.Errorf("$cancel record = %v", got)
	}
	testkit.Eventually(t, testkit.Deadline, "the process group to be gone", func() bool {
		return !groupAlive(t, pgid) && !commandAlive(t, "sleep", "987654") && !commandAlive(t, "sleep", "987655")
	})
	if got := getJob(t, h, id); got["status"] != "canceled" {
		t.Errorf("job after cancel = %v", got)
	}
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts", "", ""), http.StatusOK, ctJSON, []any{})
}
