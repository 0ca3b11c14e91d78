package chapkit_test

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/task"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// scrape reads the metrics of h at path and returns them by family name.
func scrape(t testing.TB, h http.Handler, path string, extra ...string) map[string]*dto.MetricFamily {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodGet, path, "", "", extra...)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d, body %s", path, rec.Code, rec.Body.String())
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(rec.Body.String()))
	if err != nil {
		t.Fatalf("parse metrics: %v", err)
	}
	return fams
}

// sample returns the value of the metric of family name whose labels
// include want (a counter, gauge or histogram count), and whether it exists.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

func withMonitoring(cfg ...chapkit.MonitoringConfig) func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
	return func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithMonitoring(cfg...) }
}

// TestOpsMetricsEndpoint checks the exposition itself: content type, HELP and TYPE lines, the runtime and process
// collectors and the service_name label.
func TestOpsMetricsEndpoint(t *testing.T) {
	t.Run("default prefix", func(t *testing.T) {
		app := newApp(t, withMonitoring())
		rec := testkit.Request(t, app.Handler(), http.MethodGet, "/metrics", "", "")
		if rec.Code != http.StatusOK {
			t.Fatalf("GET /metrics: status %d", rec.Code)
		}
		if got, want := rec.Header().Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8"; got != want {
			t.Errorf("Content-Type = %q, want %q", got, want)
		}
		body := rec.Body.String()
		for _, want := range []string{"# HELP ", "# TYPE ", "go_goroutines", "process_cpu_seconds_total",
			"http_server_active_requests", "chapkit_jobs_pending", "chapkit_jobs_running"} {
			if !strings.Contains(body, want) {
				t.Errorf("metrics lack %q", want)
			}
		}
		fams := scrape(t, app.Handler(), "/metrics")
		// The scrape itself is in flight while the gauge is read.
		if v, ok := sample(fams, "http_server_active_requests", map[string]string{
			"http_method": "GET", "http_route": "/metrics", "service_name": "Test"}); !ok || v != 1 {
			t.Errorf("active requests of the scrape = %v (found %v), want 1", v, ok)
		}
		if _, ok := sample(fams, "go_goroutines", map[string]string{"service_name": "Test"}); !ok {
			t.Errorf("go_goroutines has no service_name=Test label")
		}
	})
	t.Run("custom prefix and service name", func(t *testing.T) {
		app := newApp(t, withMonitoring(chapkit.MonitoringConfig{Prefix: "/api/v1/metrics", ServiceName: "svc"}))
		h := app.Handler()
		if rec := testkit.Request(t, h, http.MethodGet, "/metrics", "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET /metrics with a custom prefix: status %d, want 404", rec.Code)
		}
		fams := scrape(t, h, "/api/v1/metrics")
		if _, ok := sample(fams, "http_server_active_requests", map[string]string{"http_route": "/api/v1/metrics", "service_name": "svc"}); !ok {
			t.Errorf("no active-requests sample for the custom route with service_name=svc")
		}
	})
	t.Run("off by default", func(t *testing.T) {
		app := newApp(t)
		if rec := testkit.Request(t, app.Handler(), http.MethodGet, "/metrics", "", ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET /metrics without WithMonitoring: status %d, want 404", rec.Code)
		}
	})
}

// TestOpsMetricsHTTP checks that requests are counted under their route
// pattern, never their raw path.
func TestOpsMetricsHTTP(t *testing.T) {
	app := newApp(t, withMonitoring())
	h := app.Handler()
	route := map[string]string{"http_method": "GET", "http_route": "/api/v1/tasks/:id", "http_status_code": "404"}
	before, _ := sample(scrape(t, h, "/metrics"), "http_server_request_duration_seconds", route)
	for range 3 {
		if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks/"+unknownID, "", ""); rec.Code != http.StatusNotFound {
			t.Fatalf("GET unknown task: status %d", rec.Code)
		}
	}
	testkit.Request(t, h, http.MethodGet, "/no/such/path", "", "")
	testkit.Request(t, h, "BREW", "/api/v1/info", "", "")
	fams := scrape(t, h, "/metrics")
	if got, _ := sample(fams, "http_server_request_duration_seconds", route); got-before != 3 {
		t.Errorf("requests counted for %v = %v, want 3", route, got-before)
	}
	if got, _ := sample(fams, "http_server_request_duration_seconds", map[string]string{
		"http_route": chapkit.UnmatchedRoute, "http_status_code": "404"}); got != 1 {
		t.Errorf("unmatched 404s = %v, want 1", got)
	}
	if _, ok := sample(fams, "http_server_request_duration_seconds", map[string]string{"http_method": "_OTHER"}); !ok {
		t.Errorf("an unknown method is not counted as _OTHER")
	}
	for _, m := range fams["http_server_request_duration_seconds"].GetMetric() {
		for _, l := range m.GetLabel() {
			if strings.Contains(l.GetValue(), unknownID) || strings.Contains(l.GetValue(), "/no/such") {
				t.Errorf("label %s=%q holds a raw path", l.GetName(), l.GetValue())
			}
		}
	}
}

// TestOpsMetricsJobs checks the job counters, histogram and gauges as
// jobs are submitted and finish.
func TestOpsMetricsJobs(t *testing.T) {
	app := newApp(t, withMonitoring())
	h := app.Handler()
	ok := shellTask(t, h, "true")
	bad := shellTask(t, h, "exit 3")
	for _, id := range []string{execute(t, h, ok), execute(t, h, ok), execute(t, h, bad)} {
		waitJob(t, h, id)
	}
	fams := scrape(t, h, "/metrics")
	kind := map[string]string{"kind": task.JobKind}
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"chapkit_jobs_submitted_total", kind, 3},
		// A shell command that exits non-zero still completes its job: the
		// exit code is in the artifact.
		{"chapkit_jobs_finished_total", map[string]string{"kind": task.JobKind, "status": "completed"}, 3},
		{"chapkit_job_duration_seconds", map[string]string{"kind": task.JobKind, "status": "completed"}, 3},
		{"chapkit_jobs_pending", nil, 0},
		{"chapkit_jobs_running", nil, 0},
	}
	for _, c := range checks {
		got, found := sample(fams, c.name, c.labels)
		if !found || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, found, c.want)
		}
	}

	// A cancelled job counts as canceled.
	slow := shellTask(t, h, "sleep 30")
	id := execute(t, h, slow)
	waitRunning(t, app, id)
	if v, _ := sample(scrape(t, h, "/metrics"), "chapkit_jobs_running", nil); v != 1 {
		t.Errorf("chapkit_jobs_running = %v while the job runs, want 1", v)
	}
	if rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+id+"/$cancel", "", ""); rec.Code != http.StatusAccepted {
		t.Fatalf("$cancel: status %d, body %s", rec.Code, rec.Body.String())
	}
	waitJob(t, h, id)
	testkit.Eventually(t, testkit.Deadline, "the canceled job to be counted", func() bool {
		v, _ := sample(scrape(t, h, "/metrics"), "chapkit_jobs_finished_total", map[string]string{"kind": task.JobKind, "status": "canceled"})
		return v == 1
	})
}

// TestOpsMetricsTwoApps builds two monitored apps in one process: neither fails, and each counts only its own requests.
func TestOpsMetricsTwoApps(t *testing.T) {
	one := newApp(t, withMonitoring(chapkit.MonitoringConfig{ServiceName: "one"}))
	two := newApp(t, withMonitoring(chapkit.MonitoringConfig{ServiceName: "two"}))
	info := map[string]string{"http_route": "/api/v1/info", "http_status_code": "200"}
	for range 2 {
		testkit.Request(t, one.Handler(), http.MethodGet, "/api/v1/info", "", "")
	}
	testkit.Request(t, two.Handler(), http.MethodGet, "/api/v1/info", "", "")
	if got, _ := sample(scrape(t, one.Handler(), "/metrics"), "http_server_request_duration_seconds", info); got != 2 {
		t.Errorf("app one counted %v info requests, want 2", got)
	}
	fams := scrape(t, two.Handler(), "/metrics")
	if got, _ := sample(fams, "http_server_request_duration_seconds", info); got != 1 {
		t.Errorf("app two counted %v info requests, want 1", got)
	}
	if _, ok := sample(fams, "http_server_request_duration_seconds", map[string]string{"service_name": "one"}); ok {
		t.Errorf("app two exposes app one's metrics")
	}
}

// TestMetricsAndHealthNamePerNode: every series carries the node label of
// the scheduler that answers, and /health names the node in a header, so
// replicas of one service can be told apart.
func TestMetricsAndHealthNamePerNode(t *testing.T) {
	app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).WithDatabase(apptest.DBTarget(t)).
		WithHealth().WithMonitoring().WithJobs(chapkit.JobsConfig{}))
	node := app.Scheduler().NodeID()
	rec := testkit.Request(t, app.Handler(), http.MethodGet, "/health", "", "")
	if got := rec.Header().Get("X-Chapkit-Node"); got != node {
		t.Errorf("X-Chapkit-Node = %q, want %q", got, node)
	}
	rec = testkit.Request(t, app.Handler(), http.MethodGet, "/metrics", "", "")
	if !strings.Contains(rec.Body.String(), `chapkit_jobs_running{node="`+node+`",service_name="Test"}`) {
		t.Errorf("metrics lack the node label %s:\n%s", node, rec.Body.String())
	}
}
