package chapkit_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// TestOpenAPIConformance walks every route of a fully configured app
// through its success and error answers (each error family, auth, body
// limits, content types, unhealthy health) and validates every response
// against the app's own /openapi.json: an undocumented status, media type
// or body fails the test.
func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	var sick atomic.Bool
	app := fullApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithHealth(chapkit.HealthCheck{Name: "toggle", Check: func(context.Context) (chapkit.HealthState, string, error) {
			if sick.Load() {
				return chapkit.HealthState("unhealthy"), "down", nil
			}
			return chapkit.HealthState("healthy"), "", nil
		}}).WithLimits(chapkit.Limits{MaxBodyBytes: 4096})
	})
	_, v := openAPIDoc(t, app)
	h := app.Handler()
	key := []string{"X-API-Key", testKey}

	type step struct {
		method, path, body, ct string
		want                   int
		headers                []string
	}
	run := func(s step) *http.Response {
		t.Helper()
		hdr := append([]string{}, s.headers...)
		if s.headers == nil {
			hdr = key
		}
		rec := testkit.Request(t, h, s.method, s.path, s.body, s.ct, hdr...)
		if rec.Code != s.want {
			t.Errorf("%s %s: status %d, want %d; body %s", s.method, s.path, rec.Code, s.want, truncate(rec.Body.String()))
		}
		req, _ := http.NewRequest(s.method, "http://example.com"+s.path, strings.NewReader(s.body))
		if s.ct != "" {
			req.Header.Set("Content-Type", s.ct)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp := rec.Result()
		if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
			for _, e := range errs {
				t.Errorf("%s %s → %d %s: %s (%s)", s.method, s.path, rec.Code, rec.Header().Get("Content-Type"), e.Message, e.Reason)
				for _, se := range e.SchemaValidationErrors {
					t.Errorf("  %s at %s", se.Reason, se.KeywordLocation+" "+se.FieldPath)
				}
			}
		}
		return rec.Result()
	}

	// Fixtures made through the API.
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"echo out; echo err >&2"}`, ctJSON, key...)
	taskID := object(t, rec.Body.Bytes())["id"].(string)
	rec = testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", "", "", key...)
	jobID := object(t, rec.Body.Bytes())["job_id"].(string)
	var job map[string]any
	testkit.Eventually(t, testkit.Deadline, "job done", func() bool {
		job = object(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+jobID, "", "", key...).Body.Bytes())
		return job["status"] == "completed"
	})
	artID := job["artifact_id"].(string)
	rec = testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"true","enabled":false}`, ctJSON, key...)
	disabledID := object(t, rec.Body.Bytes())["id"].(string)
	big := `{"command":"` + strings.Repeat("x", 5000) + `"}`

	steps := []step{
		// Service, health, system, ops.
		{method: "GET", path: "/api/v1/info", want: 200},
		{method: "GET", path: "/health", want: 200},
		{method: "GET", path: "/health/$stream?poll_interval=abc", want: 422},
		{method: "GET", path: "/api/v1/system", want: 200},
		{method: "GET", path: "/api/v1/system/apps", want: 200},
		{method: "GET", path: "/api/v1/system/apps/$schema", want: 200},
		{method: "GET", path: "/metrics", want: 200},
		{method: "GET", path: "/openapi.json", want: 200},
		{method: "GET", path: "/api/v1/tasks", headers: []string{}, want: 401},
		{method: "GET", path: "/api/v1/tasks", headers: []string{"X-API-Key", "wrong"}, want: 401},
		// Tasks.
		{method: "GET", path: "/api/v1/tasks", want: 200},
		{method: "GET", path: "/api/v1/tasks?enabled=true&page=1&size=2", want: 200},
		{method: "GET", path: "/api/v1/tasks?page=0&size=3", want: 422},
		{method: "GET", path: "/api/v1/tasks?page=x&size=3", want: 422},
		{method: "GET", path: "/api/v1/tasks?enabled=maybe", want: 422},
		{method: "GET", path: "/api/v1/tasks/$schema", want: 200},
		{method: "POST", path: "/api/v1/tasks", body: `{"command":"echo hi","parameters":{"a":1}}`, ct: ctJSON, want: 201},
		{method: "POST", path: "/api/v1/tasks", body: `{"id":"` + disabledID + `","command":"true","enabled":false}`, ct: ctJSON, want: 201},
		{method: "POST", path: "/api/v1/tasks", body: `{}`, ct: ctJSON, want: 422},
		{method: "POST", path: "/api/v1/tasks", body: `{`, ct: ctJSON, want: 422},
		{method: "POST", path: "/api/v1/tasks", body: `x`, ct: "text/csv", want: 415},
		{method: "POST", path: "/api/v1/tasks", body: big, ct: ctJSON, want: 413},
		{method: "GET", path: "/api/v1/tasks/" + taskID, want: 200},
		{method: "GET", path: "/api/v1/tasks/not-a-ulid", want: 400},
		{method: "GET", path: "/api/v1/tasks/" + unknownID, want: 404},
		{method: "PUT", path: "/api/v1/tasks/" + disabledID, body: `{"command":"true","enabled":false}`, ct: ctJSON, want: 200},
		{method: "PUT", path: "/api/v1/tasks/" + unknownID, body: `{"command":"true"}`, ct: ctJSON, want: 404},
		{method: "PATCH", path: "/api/v1/tasks/" + disabledID, body: `{"parameters":{"k":"v"}}`, ct: ctJSON, want: 200},
		{method: "PATCH", path: "/api/v1/tasks/bad", body: `{}`, ct: ctJSON, want: 400},
		{method: "POST", path: "/api/v1/tasks/" + taskID + "/$execute", want: 202},
		{method: "POST", path: "/api/v1/tasks/not-a-ulid/$execute", want: 400},
		{method: "POST", path: "/api/v1/tasks/" + disabledID + "/$execute", want: 400},
		{method: "POST", path: "/api/v1/tasks/" + unknownID + "/$execute", want: 400},
		// Jobs.
		{method: "GET", path: "/api/v1/jobs", want: 200},
		{method: "GET", path: "/api/v1/jobs?status=completed", want: 200},
		{method: "GET", path: "/api/v1/jobs?status_filter=done", want: 422},
		{method: "GET", path: "/api/v1/jobs?status=running&status_filter=completed", want: 422},
		{method: "GET", path: "/api/v1/jobs/$schema", want: 200},
		{method: "GET", path: "/api/v1/jobs/" + jobID, want: 200},
		{method: "GET", path: "/api/v1/jobs/" + unknownID, want: 404},
		{method: "GET", path: "/api/v1/jobs/" + jobID + "/$stream", want: 200},
		{method: "GET", path: "/api/v1/jobs/bad/$stream", want: 400},
		{method: "POST", path: "/api/v1/jobs/" + jobID + "/$cancel", want: 409},
		{method: "POST", path: "/api/v1/jobs/" + unknownID + "/$cancel", want: 404},
		// Artifacts.
		{method: "GET", path: "/api/v1/artifacts", want: 200},
		{method: "GET", path: "/api/v1/artifacts?tag=x&page=1&size=5", want: 200},
		{method: "GET", path: "/api/v1/artifacts?page=1&size=0", want: 422},
		{method: "GET", path: "/api/v1/artifacts?size=x&page=1", want: 422},
		{method: "GET", path: "/api/v1/artifacts/$schema", want: 200},
		{method: "POST", path: "/api/v1/artifacts", body: `{"data":{"a":1},"tags":["t"]}`, ct: ctJSON, want: 201},
		{method: "POST", path: "/api/v1/artifacts", body: `{"data":null}`, ct: ctJSON, want: 500},
		{method: "POST", path: "/api/v1/artifacts", body: `{"data":1,"tags":"t"}`, ct: ctJSON, want: 422},
		{method: "GET", path: "/api/v1/artifacts/" + artID, want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + unknownID, want: 404},
		{method: "PUT", path: "/api/v1/artifacts/" + artID, body: `{"data":null,"tags":["x"]}`, ct: ctJSON, want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + artID + "/$expand", want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + unknownID + "/$expand", want: 404},
		{method: "GET", path: "/api/v1/artifacts/bad/$expand", want: 400},
		{method: "GET", path: "/api/v1/artifacts/" + artID + "/$tree", want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + unknownID + "/$tree", want: 404},
		{method: "GET", path: "/api/v1/artifacts/" + artID + "/$download", want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + artID + "/$download?format=text", want: 200},
		{method: "GET", path: "/api/v1/artifacts/" + artID + "/$download?format=xml", want: 422},
		{method: "GET", path: "/api/v1/artifacts/" + unknownID + "/$download", want: 404},
		{method: "DELETE", path: "/api/v1/artifacts/" + unknownID, want: 404},
		{method: "DELETE", path: "/api/v1/jobs/" + jobID, want: 204},
		{method: "DELETE", path: "/api/v1/tasks/" + disabledID, want: 204},
		{method: "GET", path: "/custom/a/b", want: 200},
	}
	for _, s := range steps {
		run(s)
	}
	sick.Store(true)
	run(step{method: "GET", path: "/health", want: 503})
}
