package chapkit_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/registry"
)

// TestLogsFromAnotherNode: a viewer of $logs on one node sees the output
// of a shell job running on another node while it runs, relayed through
// PostgreSQL, then its end with the exit code.
func TestLogsFromAnotherNode(t *testing.T) {
	if !pgtest.OnPostgres() {
		t.Skip("output is relayed between nodes through PostgreSQL notifications")
	}
	url := pgtest.URL(t)
	info := chapkit.ServiceInfo{DisplayName: "Test"}
	runner := apptest.Start(t, chapkit.NewServiceBuilder(info).WithDatabase(url).
		WithArtifacts(testHierarchy).WithJobs(chapkit.JobsConfig{MaxConcurrency: 1}).WithTasks(registry.New()))
	// The viewer has no tasks, so it never claims the job.
	viewer := apptest.Start(t, chapkit.NewServiceBuilder(info).WithDatabase(url).
		WithArtifacts(testHierarchy).WithJobs(chapkit.JobsConfig{}))
	h := runner.Handler()
	srv := serve(t, viewer.Handler())

	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	// The job prints a line, then waits for the test's signal file.
	cmd := "echo line 1; while [ ! -e " + gate + " ]; do sleep 0.02; done; echo line 2; exit 4"
	jobID := execute(t, h, shellTask(t, h, cmd))
	r, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/"+jobID+"/$logs")
	defer cancel()
	checkSSEHeaders(t, r.Resp)

	var stdout strings.Builder
	for !strings.Contains(stdout.String(), "line 1\n") {
		name, data, ok := r.NextEvent()
		if !ok {
			t.Fatal("stream ended before the first line")
		}
		if name == "stdout" {
			stdout.WriteString(decode(t, []byte(data)).(string))
		}
	}
	if st := getJob(t, viewer.Handler(), jobID)["status"]; st != "running" {
		t.Fatalf("job is %v after the first line, want still running (the line came live)", st)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var end string
	for end == "" {
		name, data, ok := r.NextEvent()
		if !ok {
			t.Fatal("stream ended without an end event")
		}
		switch name {
		case "stdout":
			stdout.WriteString(decode(t, []byte(data)).(string))
		case "end":
			end = data
		}
	}
	if stdout.String() != "line 1\nline 2\n" {
		t.Errorf("stdout = %q, want both lines once", stdout.String())
	}
	if end != `{"exit_code":4}` {
		t.Errorf("end = %s, want exit code 4", end)
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+jobID, "", ""); rec.Code != http.StatusOK {
		t.Errorf("GET job: %d", rec.Code)
	}
}
