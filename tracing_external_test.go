package chapkit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// The trace context a client sends in the tests, and the ids it names.
const (
	clientTraceID     = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID      = "00f067aa0ba902b7"
	clientTraceParent = "00-" + clientTraceID + "-" + clientSpanID + "-01"
)

// newRecorder returns a span recorder and a tracer provider that sends
// every span to it, sampled; the provider is shut down when the test ends.
func newRecorder(t testing.TB) (*tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

// spanView is what the tests compare of a span: ids as hex, attributes
// as a map of their values.
type spanView struct {
	Name       string
	Kind       trace.SpanKind
	TraceID    string
	Parent     string // span id of the parent; "" for a root
	Remote     bool   // the parent came from another process (or before a restart)
	Links      []string
	Attrs      map[string]any
	Status     codes.Code
	StatusText string
}

func viewOf(s sdktrace.ReadOnlySpan) spanView {
	v := spanView{Name: s.Name(), Kind: s.SpanKind(), TraceID: s.SpanContext().TraceID().String(),
		Attrs: map[string]any{}, Status: s.Status().Code, StatusText: s.Status().Description}
	if p := s.Parent(); p.IsValid() {
		v.Parent, v.Remote = p.SpanID().String(), p.IsRemote()
	}
	for _, l := range s.Links() {
		v.Links = append(v.Links, l.SpanContext.TraceID().String()+"-"+l.SpanContext.SpanID().String())
	}
	for _, a := range s.Attributes() {
		v.Attrs[string(a.Key)] = a.Value.AsInterface()
	}
	return v
}

// ended waits until the recorder holds an ended span that match accepts,
// and returns it.
func ended(t testing.TB, rec *tracetest.SpanRecorder, what string, match func(sdktrace.ReadOnlySpan) bool) sdktrace.ReadOnlySpan {
	t.Helper()
	var found sdktrace.ReadOnlySpan
	testkit.Eventually(t, testkit.Deadline, what, func() bool {
		for _, s := range rec.Ended() {
			if match(s) {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

func named(name string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool { return s.Name() == name }
}

// ofJob matches the execution span of job id.
func ofJob(id string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		for _, a := range s.Attributes() {
			if a.Key == "chapkit.job.id" && a.Value.AsString() == id {
				return true
			}
		}
		return false
	}
}

// childOf matches a span named name whose parent is span p.
func childOf(p sdktrace.ReadOnlySpan, name string) func(sdktrace.ReadOnlySpan) bool {
	return func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == name && s.Parent().SpanID() == p.SpanContext().SpanID()
	}
}

// executeWith runs task id sending the extra headers and returns the job id.
func executeWith(t testing.TB, h http.Handler, id string, headers ...string) string {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+id+"/$execute", "", "", headers...)
	if rec.Code != http.StatusAccepted {
		t.Fatalf("$execute %s: status %d, body %s", id, rec.Code, rec.Body.String())
	}
	return object(t, rec.Body.Bytes())["job_id"].(string)
}

func TestTracingRequestSpans(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	h := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTracing(tp).WithLogging().WithRoutes(func(a *chapkit.App) {
			a.Echo().GET("/boom", func(c echo.Context) error { return errors.New("boom") })
		})
	}).Handler()

	const rid = "01JCSEED0000000000000TRACE"
	for _, tc := range []struct {
		name    string
		method  string
		target  string
		headers []string
		want    spanView
	}{
		{
			name: "a route continues the client's trace", method: http.MethodGet, target: "/api/v1/jobs/" + unknownID,
			headers: []string{"traceparent", clientTraceParent, "X-Request-ID", rid},
			want: spanView{Name: "GET /api/v1/jobs/:id", Kind: trace.SpanKindServer, TraceID: clientTraceID, Parent: clientSpanID, Remote: true,
				Attrs: map[string]any{"http.request.method": "GET", "http.route": "/api/v1/jobs/:id", "http.response.status_code": int64(404),
					"url.path": "/api/v1/jobs/" + unknownID, "url.scheme": "http", "client.address": "192.0.2.1", "user_agent.original": "",
					"chapkit.request_id": rid}},
		},
		{
			name: "an unknown path is named by its method alone", method: http.MethodGet, target: "/no/such/path",
			headers: []string{"X-Request-ID", rid},
			want: spanView{Name: "GET", Kind: trace.SpanKindServer,
				Attrs: map[string]any{"http.request.method": "GET", "http.response.status_code": int64(404),
					"url.path": "/no/such/path", "url.scheme": "http", "client.address": "192.0.2.1", "user_agent.original": "",
					"chapkit.request_id": rid}},
		},
		{
			name: "a server error sets status Error", method: http.MethodGet, target: "/boom",
			headers: []string{"X-Request-ID", rid},
			want: spanView{Name: "GET /boom", Kind: trace.SpanKindServer, Status: codes.Error, StatusText: "Internal Server Error",
				Attrs: map[string]any{"http.request.method": "GET", "http.route": "/boom", "http.response.status_code": int64(500),
					"url.path": "/boom", "url.scheme": "http", "client.address": "192.0.2.1", "user_agent.original": "",
					"chapkit.request_id": rid, "error.type": "500"}},
		},
		{
			name: "an unknown method is _OTHER", method: "BREW", target: "/api/v1/jobs",
			headers: []string{"X-Request-ID", rid},
			want: spanView{Name: "_OTHER /api/v1/jobs", Kind: trace.SpanKindServer,
				Attrs: map[string]any{"http.request.method": "_OTHER", "http.request.method_original": "BREW", "http.route": "/api/v1/jobs",
					"http.response.status_code": int64(405), "url.path": "/api/v1/jobs", "url.scheme": "http", "client.address": "192.0.2.1",
					"user_agent.original": "", "chapkit.request_id": rid}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.Ended())
			testkit.Request(t, h, tc.method, tc.target, "", "", tc.headers...)
			spans := rec.Ended()[before:]
			if len(spans) != 1 {
				t.Fatalf("%d spans ended, want 1", len(spans))
			}
			got := viewOf(spans[0])
			if tc.want.TraceID == "" {
				tc.want.TraceID = got.TraceID // a new trace: any id
				if !spans[0].SpanContext().TraceID().IsValid() {
					t.Errorf("trace id %s is not valid", got.TraceID)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request span mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestTracingRefusedRequest: a request authentication refuses is traced
// too, since tracing is the outermost middleware.
func TestTracingRefusedRequest(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	h := newApp(t, withAuth(chapkit.AuthConfig{APIKeys: []string{testKey}}), func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTracing(tp)
	}).Handler()
	if code := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Code; code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", code)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans ended, want 1", len(spans))
	}
	got := viewOf(spans[0])
	want := spanView{Name: "GET", Kind: trace.SpanKindServer, TraceID: got.TraceID,
		Attrs: map[string]any{"http.request.method": "GET", "http.response.status_code": int64(401),
			"url.path": "/api/v1/jobs", "url.scheme": "http", "client.address": "192.0.2.1", "user_agent.original": ""}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("refused request span mismatch (-want +got):\n%s", diff)
	}
}

func TestTracingJobSpans(t *testing.T) {
	t.Parallel()
	rec, tp := newRecorder(t)
	reg := registry.New()
	registry.MustRegister(reg, "ok", func(ctx context.Context, _ struct{}) (int, error) { return 1, nil })
	registry.MustRegister(reg, "broken", func(ctx context.Context, _ struct{}) (int, error) {
		return 0, registry.NewError("ValueError", "no good")
	})
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTasks(reg, chapkit.TasksConfig{DefaultTimeout: time.Second}).WithTracing(tp).WithLogging()
	})
	h := app.Handler()

	// submit executes task id under the client's trace and returns the
	// job id, the request span and the execution span.
	submit := func(t *testing.T, id string) (string, sdktrace.ReadOnlySpan, sdktrace.ReadOnlySpan) {
		t.Helper()
		jobID := executeWith(t, h, id, "traceparent", clientTraceParent)
		if st := waitJob(t, h, jobID)["status"]; st != "completed" {
			t.Fatalf("job %s: status %v, want completed", jobID, st)
		}
		req := ended(t, rec, "the $execute span", func(s sdktrace.ReadOnlySpan) bool {
			return s.Name() == "POST /api/v1/tasks/:id/$execute" && slices.ContainsFunc(s.Attributes(), func(a attribute.KeyValue) bool {
				return a.Key == "url.path" && strings.Contains(a.Value.AsString(), id)
			})
		})
		exec := ended(t, rec, "the execution span of "+jobID, ofJob(jobID))
		return jobID, req, exec
	}

	t.Run("execution is a child of the submitting request and linked to it", func(t *testing.T) {
		taskID := shellTask(t, h, `echo "$TRACEPARENT"`)
		jobID, req, exec := submit(t, taskID)
		if req.Parent().SpanID().String() != clientSpanID {
			t.Errorf("request span parent = %s, want the client's %s", req.Parent().SpanID(), clientSpanID)
		}
		reqCtx := req.SpanContext()
		want := spanView{Name: "execute " + task.JobKind, Kind: trace.SpanKindConsumer, TraceID: clientTraceID,
			Parent: reqCtx.SpanID().String(), Remote: true, Links: []string{clientTraceID + "-" + reqCtx.SpanID().String()},
			Attrs: map[string]any{"chapkit.job.id": jobID, "chapkit.job.kind": task.JobKind, "chapkit.job.attempt": int64(1),
				"chapkit.job.trigger": "api", "chapkit.request_id": getRequestID(t, req)}}
		if diff := cmp.Diff(want, viewOf(exec)); diff != "" {
			t.Errorf("execution span mismatch (-want +got):\n%s", diff)
		}
		sh := ended(t, rec, "the shell span", childOf(exec, "shell"))
		want = spanView{Name: "shell", Kind: trace.SpanKindInternal, TraceID: clientTraceID, Parent: exec.SpanContext().SpanID().String(),
			Attrs: map[string]any{"chapkit.task.id": taskID, "process.exit.code": int64(0), "chapkit.task.timed_out": false}}
		if diff := cmp.Diff(want, viewOf(sh)); diff != "" {
			t.Errorf("shell span mismatch (-want +got):\n%s", diff)
		}
		// The command sees the shell span as its parent.
		wantEnv := fmt.Sprintf("00-%s-%s-01\n", clientTraceID, sh.SpanContext().SpanID())
		if got := artifactData(t, h, getJob(t, h, jobID)["artifact_id"].(string))["stdout"]; got != wantEnv {
			t.Errorf("TRACEPARENT in the command = %q, want %q", got, wantEnv)
		}
		// The stored context is the request span's, and it stays off the wire.
		j, err := app.Scheduler().Get(t.Context(), jobID)
		if err != nil {
			t.Fatal(err)
		}
		wantTP := fmt.Sprintf("00-%s-%s-01", clientTraceID, reqCtx.SpanID())
		if j.TraceParent == nil || *j.TraceParent != wantTP {
			t.Errorf("stored trace_parent = %v, want %s", j.TraceParent, wantTP)
		}
		checkJobKeys(t, getJob(t, h, jobID))
	})

	t.Run("a non-zero exit sets the shell span's status", func(t *testing.T) {
		taskID := shellTask(t, h, "echo oops >&2; exit 3")
		_, _, exec := submit(t, taskID)
		sh := viewOf(ended(t, rec, "the shell span", childOf(exec, "shell")))
		if sh.Status != codes.Error || sh.StatusText != "exit code 3" || sh.Attrs["process.exit.code"] != int64(3) || sh.Attrs["chapkit.task.timed_out"] != false {
			t.Errorf("shell span = %+v, want status Error \"exit code 3\" and exit code 3", sh)
		}
		if got := viewOf(exec); got.Status != codes.Unset {
			t.Errorf("execution span status = %v (%q), want Unset: the job completed", got.Status, got.StatusText)
		}
	})

	t.Run("a timeout is recorded on the shell span", func(t *testing.T) {
		taskID := shellTask(t, h, "sleep 30")
		_, _, exec := submit(t, taskID)
		sh := viewOf(ended(t, rec, "the shell span", childOf(exec, "shell")))
		if sh.Status != codes.Error || sh.Attrs["chapkit.task.timed_out"] != true {
			t.Errorf("shell span = %+v, want status Error and timed_out", sh)
		}
	})

	t.Run("functions get their own span", func(t *testing.T) {
		for _, tc := range []struct {
			fn         string
			status     codes.Code
			statusText string
			errorType  any
		}{
			{"ok", codes.Unset, "", nil},
			{"broken", codes.Error, "ValueError: no good", "ValueError"},
		} {
			taskID := createTask(t, h, `{"command":"`+tc.fn+`","task_type":"python"}`)["id"].(string)
			_, _, exec := submit(t, taskID)
			fs := viewOf(ended(t, rec, "the function span", childOf(exec, "function "+tc.fn)))
			if fs.Status != tc.status || fs.StatusText != tc.statusText || fs.Attrs["error.type"] != tc.errorType ||
				fs.Attrs["chapkit.task.function"] != tc.fn || fs.Attrs["chapkit.task.id"] != taskID {
				t.Errorf("function %s span = %+v, want status %v %q, error.type %v", tc.fn, fs, tc.status, tc.statusText, tc.errorType)
			}
		}
	})
}

// getRequestID returns the chapkit.request_id attribute of span s.
func getRequestID(t testing.TB, s sdktrace.ReadOnlySpan) string {
	t.Helper()
	for _, a := range s.Attributes() {
		if a.Key == "chapkit.request_id" {
			return a.Value.AsString()
		}
	}
	t.Fatalf("span %s has no chapkit.request_id", s.Name())
	return ""
}

// checkJobKeys fails if the job record carries a key beyond the documented
// ones: the trace context and request id stay off the wire.
func checkJobKeys(t testing.TB, rec map[string]any) {
	t.Helper()
	allowed := []string{"id", "status", "submitted_at", "started_at", "finished_at", "error", "error_traceback", "artifact_id",
		"attempt", "node", "trigger", "retry_of"}
	for k := range rec {
		if !slices.Contains(allowed, k) {
			t.Errorf("job record has key %q", k)
		}
	}
}

func TestTracingOffStoresNoTraceContext(t *testing.T) {
	t.Parallel()
	app := newApp(t)
	h := app.Handler()
	jobID := executeWith(t, h, shellTask(t, h, "true"), "traceparent", clientTraceParent)
	waitJob(t, h, jobID)
	j, err := app.Scheduler().Get(t.Context(), jobID)
	if err != nil {
		t.Fatal(err)
	}
	if j.TraceParent != nil || j.RequestID != nil {
		t.Errorf("stored trace_parent %v, request_id %v; want none without tracing and request logging", j.TraceParent, j.RequestID)
	}
}

// logLines parses the JSON log lines of buf.
func logLines(t testing.TB, buf *syncBuffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(buf.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
}

// jsonLogs logs JSON lines at debug level into buf.
func jsonLogs(buf *syncBuffer) func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
	return func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithLogger(slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))).WithLogging()
	}
}

// jobMessages waits for the line msg about job id and returns the
// messages of every line about the job, failing for a line that does not
// carry request id rid.
func jobMessages(t testing.TB, buf *syncBuffer, id, msg, rid string) []string {
	t.Helper()
	testkit.Eventually(t, testkit.Deadline, "log line "+msg+" of job "+id, func() bool {
		return slices.ContainsFunc(logLines(t, buf), func(l map[string]any) bool { return l["job_id"] == id && l["msg"] == msg })
	})
	var msgs []string
	for _, l := range logLines(t, buf) {
		if l["job_id"] != id {
			continue
		}
		msgs = append(msgs, l["msg"].(string))
		if l["request_id"] != rid {
			t.Errorf("log line %v has request_id %v, want %s", l, l["request_id"], rid)
		}
	}
	return msgs
}

// submittedApart checks that msgs hold the "task submitted" line of the
// $execute handler once and returns the job's own lines in their order.
// The handler logs after Submit returns, and a job started at once may
// log "job started" first, so only the job's lines have an order.
func submittedApart(t testing.TB, msgs []string) []string {
	t.Helper()
	var rest []string
	n := 0
	for _, m := range msgs {
		if m == "task submitted" {
			n++
			continue
		}
		rest = append(rest, m)
	}
	if n != 1 {
		t.Errorf("%d \"task submitted\" lines in %q, want 1", n, msgs)
	}
	return rest
}

func TestRequestIDInJobLogs(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	h := newApp(t, jsonLogs(&buf)).Handler()
	const rid = "01JCSEED0000000000000JB001"

	jobID := executeWith(t, h, shellTask(t, h, "echo hi"), "X-Request-ID", rid)
	waitJob(t, h, jobID)
	got := submittedApart(t, jobMessages(t, &buf, jobID, "job completed", rid))
	if diff := cmp.Diff([]string{"job started", "job completed"}, got); diff != "" {
		t.Errorf("log lines of the job (-want +got):\n%s", diff)
	}

	// A shell that cannot start is logged by the task runner, and a
	// function reads the submitting request id from its context.
	reg := registry.New()
	registry.MustRegister(reg, "rid", func(ctx context.Context, _ struct{}) (string, error) { return chapkit.RequestID(ctx), nil })
	b := builderFor(t)
	jsonLogs(&buf)(b)
	b.WithTasks(reg, chapkit.TasksConfig{Manager: task.Config{WorkDir: "/nonexistent/dir"}})
	h = apptest.Start(t, b).Handler()
	jobID = executeWith(t, h, shellTask(t, h, "true"), "X-Request-ID", rid)
	waitJob(t, h, jobID)
	got = submittedApart(t, jobMessages(t, &buf, jobID, "job failed", rid))
	if diff := cmp.Diff([]string{"job started", "shell task failed to run", "job failed"}, got); diff != "" {
		t.Errorf("log lines of the failed job (-want +got):\n%s", diff)
	}
	fnTask := createTask(t, h, `{"command":"rid","task_type":"python"}`)["id"].(string)
	done := waitJob(t, h, executeWith(t, h, fnTask, "X-Request-ID", rid))
	if got := artifactData(t, h, done["artifact_id"].(string))["result"]; got != rid {
		t.Errorf("chapkit.RequestID in the function = %v, want %s", got, rid)
	}
}

// TestTracingLinkSurvivesRestart: a job submitted under a trace and run by
// the next process on the same database still runs in a span whose parent
// and link are the submitting request's, and its log lines still carry
// the submitting request id.
func TestTracingLinkSurvivesRestart(t *testing.T) {
	t.Parallel()
	target := apptest.DBTarget(t)
	build := func(tp trace.TracerProvider, buf *syncBuffer) *chapkit.App {
		b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
			WithDatabase(target).
			WithArtifacts(testHierarchy).
			WithJobs(chapkit.JobsConfig{MaxConcurrency: 1, DrainTimeout: 200 * time.Millisecond}).
			WithTasks(registry.New()).
			WithTracing(tp)
		jsonLogs(buf)(b)
		app, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		return app
	}
	const rid = "01JCSEED0000000000000JB002"

	rec1, tp1 := newRecorder(t)
	var buf1 syncBuffer
	first := build(tp1, &buf1)
	h := first.Handler()
	// The only slot is taken, so the next job waits in pending.
	long := execute(t, h, shellTask(t, h, "sleep 987610"))
	waitRunning(t, first, long)
	queued := executeWith(t, h, shellTask(t, h, "echo after restart"), "traceparent", clientTraceParent, "X-Request-ID", rid)
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	submitted := ended(t, rec1, "the $execute span", func(s sdktrace.ReadOnlySpan) bool {
		return s.Name() == "POST /api/v1/tasks/:id/$execute" && getRequestID(t, s) == rid
	})
	if slices.ContainsFunc(rec1.Ended(), ofJob(queued)) {
		t.Fatalf("job %s ran before the restart", queued)
	}

	rec2, tp2 := newRecorder(t)
	var buf2 syncBuffer
	second := build(tp2, &buf2)
	t.Cleanup(func() { second.Shutdown(context.Background()) })
	h = second.Handler()
	if st := waitJob(t, h, queued)["status"]; st != "completed" {
		t.Fatalf("requeued job: status %v", st)
	}
	exec := viewOf(ended(t, rec2, "the execution span after the restart", ofJob(queued)))
	sc := submitted.SpanContext()
	want := []string{clientTraceID + "-" + sc.SpanID().String()}
	if exec.TraceID != clientTraceID || exec.Parent != sc.SpanID().String() || !exec.Remote || !cmp.Equal(want, exec.Links) {
		t.Errorf("execution span = %+v, want parent and link %v", exec, want)
	}
	if got := jobMessages(t, &buf2, queued, "job completed", rid); !slices.Contains(got, "job started") {
		t.Errorf("log lines of the job after the restart = %v", got)
	}
}

// BenchmarkTracingOn is BenchmarkTracingOff with every span sampled and
// recorded in memory.
func BenchmarkTracingOn(b *testing.B) {
	withTracing := func(sb *chapkit.ServiceBuilder) {
		_, tp := newRecorder(b)
		sb.WithTracing(tp)
	}
	b.Run("request", func(b *testing.B) {
		app, _ := benchApp(b, withTracing)
		benchRequests(b, app)
	})
	b.Run("job", func(b *testing.B) {
		app, id := benchApp(b, withTracing)
		benchJobs(b, app, id)
	})
}
