package chapkit_test

import (
	"maps"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/pgtest"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/registry"
)

// TestJobsStream: GET /api/v1/jobs/$stream sends every job's submission
// and state changes, each the job's full record with its task id, and
// deletions, until the client leaves.
func TestJobsStream(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: 1})
	})
	h := app.Handler()
	srv := serve(t, h)
	r, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/$stream")
	defer cancel()
	checkSSEHeaders(t, r.Resp)

	taskID := shellTask(t, h, "echo from the stream test")
	jobID := execute(t, h, taskID)
	var statuses []any
	var last map[string]any
	for last == nil || last["status"] != "completed" {
		payload, ok := r.Next()
		if !ok {
			t.Fatal("stream ended")
		}
		rec := object(t, []byte(payload))
		if rec["id"] != jobID {
			continue
		}
		plain := maps.Clone(rec)
		delete(plain, "task_id")
		if !isJobRecord(plain) || rec["task_id"] != taskID {
			t.Errorf("event %v is not the record of job %s with task_id %s", rec, jobID, taskID)
		}
		statuses = append(statuses, rec["status"])
		last = rec
	}
	if statuses[0] != "pending" {
		t.Errorf("statuses = %v, want the submission first", statuses)
	}
	got := waitJob(t, h, jobID)
	delete(last, "task_id")
	if diff := cmp.Diff(got, last); diff != "" {
		t.Errorf("last event differs from GET (-get +event):\n%s", diff)
	}

	if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+jobID, "", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	payload, ok := r.Next()
	if !ok {
		t.Fatal("stream ended before the deletion")
	}
	if diff := cmp.Diff(map[string]any{"id": jobID, "status": "deleted"}, object(t, []byte(payload))); diff != "" {
		t.Errorf("deletion event mismatch (-want +got):\n%s", diff)
	}
}

// TestJobsStreamFromAnotherNode: the service-wide stream of one node shows
// the jobs another node's clients submit and that node runs.
func TestJobsStreamFromAnotherNode(t *testing.T) {
	if !pgtest.OnPostgres() {
		t.Skip("nodes hear each other's changes through PostgreSQL notifications")
	}
	url := pgtest.URL(t)
	info := chapkit.ServiceInfo{DisplayName: "Test"}
	runner := apptest.Start(t, chapkit.NewServiceBuilder(info).WithDatabase(url).
		WithArtifacts(testHierarchy).WithJobs(chapkit.JobsConfig{MaxConcurrency: 1}).WithTasks(registry.New()))
	// The viewer has no tasks, so it never claims the job.
	viewer := apptest.Start(t, chapkit.NewServiceBuilder(info).WithDatabase(url).
		WithArtifacts(testHierarchy).WithJobs(chapkit.JobsConfig{}))
	srv := serve(t, viewer.Handler())
	r, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/$stream")
	defer cancel()
	checkSSEHeaders(t, r.Resp)

	h := runner.Handler()
	taskID := shellTask(t, h, "echo on the other node")
	jobID := execute(t, h, taskID)
	var statuses []string
	for len(statuses) == 0 || statuses[len(statuses)-1] != "completed" {
		payload, ok := r.Next()
		if !ok {
			t.Fatal("stream ended")
		}
		rec := object(t, []byte(payload))
		if rec["id"] != jobID {
			continue
		}
		if rec["task_id"] != taskID {
			t.Errorf("event %v lacks task_id %s", rec, taskID)
		}
		statuses = append(statuses, rec["status"].(string))
	}
	if len(statuses) > 3 {
		t.Errorf("statuses = %v, want each state at most once", statuses)
	}
	if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+jobID, "", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE: %d", rec.Code)
	}
	for {
		payload, ok := r.Next()
		if !ok {
			t.Fatal("stream ended before the deletion")
		}
		if rec := object(t, []byte(payload)); rec["id"] == jobID {
			if diff := cmp.Diff(map[string]any{"id": jobID, "status": "deleted"}, rec); diff != "" {
				t.Errorf("deletion event mismatch (-want +got):\n%s", diff)
			}
			return
		}
	}
}
