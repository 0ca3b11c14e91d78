package chapkit_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

var jobNotFound = detail("Job not found")

func TestJobList(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", ""), http.StatusOK, ctJSON, []any{})

	id := shellTask(t, h, "echo listed")
	var done []string
	for range 3 {
		j := execute(t, h, id)
		waitJob(t, h, j)
		done = append(done, j)
	}
	running := execute(t, h, shellTask(t, h, "sleep 987602"))
	waitRunning(t, app, running)
	t.Cleanup(func() { testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+running, "", "") })

	ids := func(t *testing.T, query string) []string {
		t.Helper()
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs"+query, "", "")
		expect(t, rec, http.StatusOK, ctJSON, nil)
		var out []string
		for _, j := range array(t, rec.Body.Bytes()) {
			rec := j.(map[string]any)
			if !isJobRecord(rec) {
				t.Errorf("job record %v does not have exactly the 8 keys (and optionally node)", rec)
			}
			out = append(out, rec["id"].(string))
		}
		return out
	}
	tests := []struct {
		name, query string
		want        []string
	}{
		{"newest first", "", []string{running, done[2], done[1], done[0]}},
		{"completed only", "?status_filter=completed", []string{done[2], done[1], done[0]}},
		{"running only", "?status_filter=running", []string{running}},
		{"failed none", "?status_filter=failed", nil},
		{"status alias: completed", "?status=completed", []string{done[2], done[1], done[0]}},
		{"status alias: running", "?status=running", []string{running}},
		{"status alias: failed none", "?status=failed", nil},
		{"both agree", "?status=running&status_filter=running", []string{running}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, ids(t, tc.query)); diff != "" {
				t.Errorf("ids mismatch (-want +got):\n%s", diff)
			}
		})
	}

	for _, bad := range []string{"done", ""} {
		t.Run("status_filter="+bad+" is 422 enum", func(t *testing.T) {
			expected := "'pending', 'running', 'completed', 'failed' or 'canceled'"
			rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs?status_filter="+bad, "", "")
			expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
				"type": "enum", "loc": []any{"query", "status_filter"}, "msg": "Input should be " + expected,
				"input": bad, "ctx": map[string]any{"expected": expected}}}})
			rec = testkit.Request(t, h, http.MethodGet, "/api/v1/jobs?status="+bad, "", "")
			expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
				"type": "enum", "loc": []any{"query", "status"}, "msg": "Input should be " + expected,
				"input": bad, "ctx": map[string]any{"expected": expected}}}})
		})
	}
	t.Run("status and status_filter disagreeing is 422", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs?status_filter=completed&status=running", "", "")
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "value_error", "loc": []any{"query", "status"},
			"msg":   "Value error, status and status_filter disagree; send one of them",
			"input": "running", "ctx": map[string]any{"status_filter": "completed"}}}})
	})
}

func TestJobGetAndDelete(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()

	for _, id := range []string{unknownID, "invalid-ulid", strings.ToLower(unknownID)} {
		t.Run("GET "+id+" is 404", func(t *testing.T) {
			expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+id, "", ""), http.StatusNotFound, ctJSON, jobNotFound)
		})
		t.Run("DELETE "+id+" is 404", func(t *testing.T) {
			expect(t, testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+id, "", ""), http.StatusNotFound, ctJSON, jobNotFound)
		})
		t.Run("$cancel "+id+" is 404", func(t *testing.T) {
			expect(t, testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", ""), http.StatusNotFound, ctJSON, jobNotFound)
		})
	}

	t.Run("DELETE a finished job is 204, then 404; its artifact stays", func(t *testing.T) {
		job := waitJob(t, h, execute(t, h, shellTask(t, h, "echo done")))
		rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+job["id"].(string), "", "")
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("DELETE: %d %q, want 204 and no body", rec.Code, rec.Body.String())
		}
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+job["id"].(string), "", ""), http.StatusNotFound, ctJSON, jobNotFound)
		artifactData(t, h, job["artifact_id"].(string))
	})

	t.Run("DELETE a running job is 204 and kills its process group", func(t *testing.T) {
		id := execute(t, h, shellTask(t, h, "sleep 987603"))
		pgid := waitRunning(t, app, id)
		if !groupAlive(t, pgid) {
			t.Fatalf("process group %d of the running job not found", pgid)
		}
		rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+id, "", "")
		if rec.Code != http.StatusNoContent || rec.Body.Len() != 0 {
			t.Fatalf("DELETE: %d %q", rec.Code, rec.Body.String())
		}
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+id, "", ""), http.StatusNotFound, ctJSON, jobNotFound)
		testkit.Eventually(t, testkit.Deadline, "the process group to be gone", func() bool { return !groupAlive(t, pgid) })
		if commandAlive(t, "sleep", "987603") {
			t.Errorf("sleep 987603 still runs")
		}
	})
}

func TestJobCancel(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	// No artifact may be written for a cancelled job: count them.
	artifacts := func() int {
		return len(array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/artifacts", "", "").Body.Bytes()))
	}

	t.Run("$cancel a running shell job", func(t *testing.T) {
		id := execute(t, h, shellTask(t, h, "sleep 987604"))
		pgid := waitRunning(t, app, id)
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", "")
		expect(t, rec, http.StatusAccepted, ctJSON, map[string]any{"id": id, "status": "canceled",
			"error": nil, "error_traceback": nil, "artifact_id": nil, "trigger": "api"}, ignoreKeys("submitted_at", "started_at", "finished_at", "node"))
		got := object(t, rec.Body.Bytes())
		if !isJobRecord(got) {
			t.Errorf("canceled record = %v, want the job record keys", got)
		}
		if got["finished_at"] == nil || got["started_at"] == nil || got["submitted_at"] == nil {
			t.Errorf("canceled record = %v, want submitted_at, started_at and finished_at", got)
		}
		testkit.Eventually(t, testkit.Deadline, "the process group to be gone", func() bool { return !groupAlive(t, pgid) })
		if commandAlive(t, "sleep", "987604") {
			t.Errorf("sleep 987604 still runs")
		}
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+id, "", ""), http.StatusOK, ctJSON, got)
		if n := artifacts(); n != 0 {
			t.Errorf("%d artifacts after a cancel, want 0", n)
		}

		t.Run("again is 409", func(t *testing.T) {
			expect(t, testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", ""), http.StatusConflict, ctJSON,
				detail("Job "+id+" is already canceled"))
		})
	})

	t.Run("$cancel a completed job is 409", func(t *testing.T) {
		job := waitJob(t, h, execute(t, h, shellTask(t, h, "true")))
		id := job["id"].(string)
		expect(t, testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", ""), http.StatusConflict, ctJSON,
			detail("Job "+id+" is already completed"))
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+id, "", ""), http.StatusOK, ctJSON, job)
	})

	t.Run("$cancel a pending job: it never runs", func(t *testing.T) {
		app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
			return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: 1})
		})
		h := app.Handler()
		blocker := execute(t, h, shellTask(t, h, "sleep 987605"))
		waitRunning(t, app, blocker)
		pending := execute(t, h, shellTask(t, h, "echo never"))
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+pending+"/$cancel", "", "")
		expect(t, rec, http.StatusAccepted, ctJSON, map[string]any{"id": pending, "status": "canceled", "started_at": nil,
			"error": nil, "error_traceback": nil, "artifact_id": nil, "trigger": "api"}, ignoreKeys("submitted_at", "finished_at"))
		if rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+blocker+"/$cancel", "", ""); rec.Code != http.StatusAccepted {
			t.Fatalf("$cancel blocker: %d", rec.Code)
		}
		// Another job runs after the blocker; the cancelled one stays so.
		next := waitJob(t, h, execute(t, h, shellTask(t, h, "echo after")))
		if next["status"] != "completed" {
			t.Errorf("next job = %v", next)
		}
		if got := getJob(t, h, pending); got["status"] != "canceled" || got["started_at"] != nil {
			t.Errorf("cancelled pending job = %v", got)
		}
	})
}

func TestJobSchemaAndConfig(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{Prefix: "/jobs", MaxConcurrency: 2})
	})
	h := app.Handler()
	expect(t, testkit.Request(t, h, http.MethodGet, "/jobs", "", ""), http.StatusOK, ctJSON, []any{})
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", ""), http.StatusNotFound, ctJSON, detail("Not Found"))
	if n := app.Scheduler().MaxConcurrency(); n != 2 {
		t.Errorf("MaxConcurrency() = %d, want 2", n)
	}

	rec := testkit.Request(t, h, http.MethodGet, "/jobs/$schema", "", "")
	expect(t, rec, http.StatusOK, ctJSON, nil)
	s := object(t, rec.Body.Bytes())
	rec2, _ := s["$defs"].(map[string]any)["JobRecord"].(map[string]any)
	props, _ := rec2["properties"].(map[string]any)
	if s["type"] != "array" || !cmp.Equal(s["items"], map[string]any{"$ref": "#/$defs/JobRecord"}) || rec2["type"] != "object" ||
		!cmp.Equal(rec2["required"], []any{"id"}) {
		t.Errorf("schema = %v", s)
	}
	for _, k := range []string{"id", "status", "submitted_at", "started_at", "finished_at", "error", "error_traceback", "artifact_id"} {
		if _, ok := props[k]; !ok {
			t.Errorf("JobRecord properties lack %q", k)
		}
	}
}
