package chapkit_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func checkSSEHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stream status = %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": ctSSE, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}

func records(t *testing.T, events []string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range events {
		out = append(out, object(t, []byte(e)))
	}
	return out
}

func TestJobStream(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: 1})
	})
	h := app.Handler()
	srv := serve(t, h)
	client := srv.Client()

	t.Run("a finished job streams one event", func(t *testing.T) {
		job := waitJob(t, h, execute(t, h, shellTask(t, h, "echo streamed")))
		r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+job["id"].(string)+"/$stream")
		defer cancel()
		checkSSEHeaders(t, r.Resp)
		events := r.All()
		if len(events) != 1 {
			t.Fatalf("events = %q, want exactly one", events)
		}
		if diff := cmp.Diff(job, object(t, []byte(events[0]))); diff != "" {
			t.Errorf("event mismatch with GET (-get +event):\n%s", diff)
		}
		if strings.Contains(events[0], ": ") {
			t.Errorf("event %s is not compact JSON", events[0])
		}
	})

	t.Run("a queued job streams pending, running, completed", func(t *testing.T) {
		blocker := execute(t, h, shellTask(t, h, "sleep 987606"))
		waitRunning(t, app, blocker)
		id := execute(t, h, shellTask(t, h, "echo late"))
		r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+id+"/$stream?poll_interval=0.1")
		defer cancel()
		checkSSEHeaders(t, r.Resp)
		first, ok := r.Next()
		if !ok {
			t.Fatal("stream ended before the first event")
		}
		if rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+blocker+"/$cancel", "", ""); rec.Code != http.StatusAccepted {
			t.Fatalf("$cancel blocker: %d", rec.Code)
		}
		recs := records(t, append([]string{first}, r.All()...))
		var statuses []any
		for _, rec := range recs {
			statuses = append(statuses, rec["status"])
			if !isJobRecord(rec) || rec["id"] != id {
				t.Errorf("event %v is not the full record of %s", rec, id)
			}
		}
		if diff := cmp.Diff([]any{"pending", "running", "completed"}, statuses); diff != "" {
			t.Errorf("statuses mismatch (-want +got):\n%s", diff)
		}
		if last := recs[len(recs)-1]; last["artifact_id"] == nil || last["finished_at"] == nil {
			t.Errorf("last event = %v", last)
		}
	})

	t.Run("a failing job ends with failed", func(t *testing.T) {
		id := createTask(t, h, `{"command":"no_such_function","task_type":"python"}`)["id"].(string)
		jobID := execute(t, h, id)
		r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+jobID+"/$stream")
		defer cancel()
		recs := records(t, r.All())
		last := recs[len(recs)-1]
		if last["status"] != "failed" || !strings.Contains(last["error"].(string), "ValueError") || last["artifact_id"] != nil {
			t.Errorf("last event = %v", last)
		}
	})

	t.Run("poll_interval of any value is accepted", func(t *testing.T) {
		job := waitJob(t, h, execute(t, h, shellTask(t, h, "true")))
		for _, p := range []string{"abc", "0", "-1", "0.2"} {
			r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+job["id"].(string)+"/$stream?poll_interval="+p)
			checkSSEHeaders(t, r.Resp)
			if recs := records(t, r.All()); len(recs) != 1 || recs[0]["status"] != "completed" {
				t.Errorf("poll_interval=%s: events %v", p, recs)
			}
			cancel()
		}
	})

	t.Run("invalid id is 400, unknown is 404", func(t *testing.T) {
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/invalid-ulid/$stream", "", ""), http.StatusBadRequest, ctJSON,
			detail("Invalid job ID format"))
		expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+unknownID+"/$stream", "", ""), http.StatusNotFound, ctJSON, jobNotFound)
	})

	t.Run("a job deleted mid-stream ends with the deleted event", func(t *testing.T) {
		id := execute(t, h, shellTask(t, h, "sleep 987607"))
		waitRunning(t, app, id)
		r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+id+"/$stream")
		defer cancel()
		first, ok := r.Next()
		if !ok || object(t, []byte(first))["status"] != "running" {
			t.Fatalf("first event = %q", first)
		}
		if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+id, "", ""); rec.Code != http.StatusNoContent {
			t.Fatalf("DELETE: %d", rec.Code)
		}
		rest := r.All()
		if len(rest) == 0 || rest[len(rest)-1] != `{"status": "deleted"}` {
			t.Errorf("events after DELETE = %q, want to end with {\"status\": \"deleted\"}", rest)
		}
	})

	t.Run("a job cancelled mid-stream ends with canceled", func(t *testing.T) {
		id := execute(t, h, shellTask(t, h, "sleep 987608"))
		waitRunning(t, app, id)
		r, cancel := testkit.OpenSSE(t, client, srv.URL+"/api/v1/jobs/"+id+"/$stream")
		defer cancel()
		if _, ok := r.Next(); !ok {
			t.Fatal("no first event")
		}
		if rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", ""); rec.Code != http.StatusAccepted {
			t.Fatalf("$cancel: %d", rec.Code)
		}
		rest := records(t, r.All())
		if len(rest) != 1 || rest[0]["status"] != "canceled" || rest[0]["finished_at"] == nil {
			t.Errorf("events after $cancel = %v, want one canceled record", rest)
		}
	})
}

// TestJobStreamClientDisconnect: a client that leaves mid-stream ends the
// handler (its stream slot is free again) and leaves no goroutine behind.
// It is not parallel, so the goroutine check sees only its own.
func TestJobStreamClientDisconnect(t *testing.T) {
	before := goleak.IgnoreCurrent()
	func() {
		app, err := builderFor(t).WithLimits(chapkit.Limits{MaxStreams: 1}).Build()
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		defer app.Shutdown(context.Background())
		h := app.Handler()
		srv := serve(t, h)
		defer srv.Close()
		client := srv.Client()

		id := execute(t, h, shellTask(t, h, "sleep 987609"))
		waitRunning(t, app, id)
		url := srv.URL + "/api/v1/jobs/" + id + "/$stream"
		r, cancel := testkit.OpenSSE(t, client, url)
		if _, ok := r.Next(); !ok {
			t.Fatal("no first event")
		}
		// The only stream slot is taken.
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("second stream: %d (Retry-After %q), want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		cancel()
		r.Resp.Body.Close()
		// The server notices the disconnect and frees the slot.
		testkit.Eventually(t, testkit.Deadline, "the stream handler to end", func() bool {
			ctx, stop := context.WithCancel(t.Context())
			defer stop()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
		if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+id, "", ""); rec.Code != http.StatusNoContent {
			t.Errorf("DELETE: %d", rec.Code)
		}
	}()
	goleak.VerifyNone(t, before)
}

func TestHealthStream(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	srv := serve(t, app.Handler())
	r, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/health/$stream?poll_interval=0.05")
	defer cancel()
	checkSSEHeaders(t, r.Resp)
	want := `{"status":"healthy","checks":{"database":{"state":"healthy"}}}`
	for i := range 2 {
		ev, ok := r.Next()
		if !ok {
			t.Fatalf("stream ended after %d events", i)
		}
		if ev != want {
			t.Errorf("event %d = %s, want %s", i, ev, want)
		}
	}

	t.Run("bad poll_interval is 422 float_parsing", func(t *testing.T) {
		rec := testkit.Request(t, app.Handler(), http.MethodGet, "/health/$stream?poll_interval=abc", "", "")
		expect(t, rec, http.StatusUnprocessableEntity, ctJSON, map[string]any{"detail": []any{map[string]any{
			"type": "float_parsing", "loc": []any{"query", "poll_interval"},
			"msg": "Input should be a valid number, unable to parse string as a number", "input": "abc"}}})
	})
}
