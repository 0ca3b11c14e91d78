package chapkit_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/testkit"
)

// logEvent is one event of a $logs stream, its data decoded.
type logEvent struct {
	Name string
	Data any
}

func readLogEvent(t *testing.T, s *testkit.SSE) (logEvent, bool) {
	t.Helper()
	name, data, ok := s.NextEvent()
	if !ok {
		return logEvent{}, false
	}
	var v any
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("event %s: data %q is not JSON: %v", name, data, err)
	}
	return logEvent{name, v}, true
}

// TestLogsLive follows a running shell job: each line arrives as its own
// stdout event while the job still runs, then the end event carries the
// exit code; afterwards the same URL replays the stored output.
func TestLogsLive(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	srv := serve(t, h)
	id := execute(t, h, shellTask(t, h, "for i in 1 2 3; do echo line $i; sleep 0.3; done; echo done >&2"))

	// finished is closed when the job's record stream reports a final state.
	finished := make(chan struct{})
	status, cancelStatus := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/"+id+"/$stream")
	defer cancelStatus()
	go func() {
		defer close(finished)
		for {
			p, ok := status.Next()
			if !ok || strings.Contains(p, `"status":"completed"`) || strings.Contains(p, `"status":"failed"`) {
				return
			}
		}
	}()

	logs, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/"+id+"/$logs")
	defer cancel()
	checkSSEHeaders(t, logs.Resp)
	first, ok := readLogEvent(t, logs)
	if !ok {
		t.Fatal("stream ended before any event")
	}
	select {
	case <-finished:
		t.Fatal("the first line arrived only after the job had finished")
	default:
	}
	got := []logEvent{first}
	for {
		ev, ok := readLogEvent(t, logs)
		if !ok {
			break
		}
		got = append(got, ev)
	}
	want := []logEvent{
		{"stdout", "line 1\n"}, {"stdout", "line 2\n"}, {"stdout", "line 3\n"}, {"stderr", "done\n"},
		{"end", map[string]any{"exit_code": 0.0}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("live events (-want +got):\n%s", diff)
	}
	<-finished

	replay, cancelReplay := testkit.OpenSSE(t, srv.Client(), srv.URL+"/api/v1/jobs/"+id+"/$logs")
	defer cancelReplay()
	got = nil
	for {
		ev, ok := readLogEvent(t, replay)
		if !ok {
			break
		}
		got = append(got, ev)
	}
	want = []logEvent{{"stdout", "line 1\nline 2\nline 3\n"}, {"stderr", "done\n"}, {"end", map[string]any{"exit_code": 0.0}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("replay of the finished job (-want +got):\n%s", diff)
	}
}

// TestLogsGo reads the same feed through App.Logs.
func TestLogsGo(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	id := execute(t, h, shellTask(t, h, "echo one; sleep 0.2; echo two; exit 3"))
	r, err := app.Logs(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var text strings.Builder
	var code *int
	for {
		ev, err := r.Next(t.Context())
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Kind {
		case chapkit.LogOutput:
			text.WriteString(ev.Text)
		case chapkit.LogEnd:
			code = ev.ExitCode
		}
	}
	if text.String() != "one\ntwo\n" || code == nil || *code != 3 {
		t.Errorf("Logs: text %q, exit code %v; want \"one\\ntwo\\n\" and 3", text.String(), code)
	}
	if _, err := app.Logs(t.Context(), unknownID); err == nil {
		t.Error("Logs of an unknown job: no error")
	}
}

// TestLogsErrorsHeadAndDocs covers the route's edges: an unknown job is
// 404 in the jobs' plain-detail family, a malformed id 400, HEAD answers
// the stream's headers without a body, and OpenAPI documents the route.
func TestLogsErrorsHeadAndDocs(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithDocs() })
	h := app.Handler()

	rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+unknownID+"/$logs", "", "")
	if rec.Code != http.StatusNotFound || rec.Header().Get("Content-Type") != ctJSON {
		t.Errorf("unknown job: %d %s %s, want 404 JSON", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	if _, ok := object(t, rec.Body.Bytes())["detail"]; !ok {
		t.Errorf("unknown job body %s has no detail", rec.Body)
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/nope/$logs", "", ""); rec.Code != http.StatusBadRequest {
		t.Errorf("malformed id: %d, want 400", rec.Code)
	}

	id := execute(t, h, shellTask(t, h, "echo hi"))
	waitJob(t, h, id)
	rec = testkit.Request(t, h, http.MethodHead, "/api/v1/jobs/"+id+"/$logs", "", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ctSSE || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d %q body %q, want 200, %s, empty", rec.Code, rec.Header().Get("Content-Type"), rec.Body, ctSSE)
	}

	doc := testkit.Request(t, h, http.MethodGet, "/openapi.json", "", "")
	var spec struct {
		Paths map[string]map[string]struct {
			Summary   string `json:"summary"`
			Responses map[string]struct {
				Content map[string]struct {
					Schema struct {
						Description string `json:"description"`
					} `json:"schema"`
				} `json:"content"`
			} `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(doc.Body.Bytes(), &spec); err != nil {
		t.Fatal(err)
	}
	get, ok := spec.Paths["/api/v1/jobs/{id}/$logs"]["get"]
	if !ok {
		t.Fatal("OpenAPI has no GET /api/v1/jobs/{id}/$logs")
	}
	desc := get.Responses["200"].Content["text/event-stream"].Schema.Description
	for _, word := range []string{"event: stdout", "event: stderr", "event: end", "skipped"} {
		if !strings.Contains(desc, word) {
			t.Errorf("200 response description %q does not mention %q", desc, word)
		}
	}
	if _, ok := get.Responses["404"]; !ok {
		t.Error("404 not documented")
	}
}
