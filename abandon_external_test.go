package chapkit_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

type noParams struct{}

// stubbornApp starts a service with concurrency n whose "stubborn"
// function blocks, ignoring its context, until the test ends, and whose
// "quick" function returns at once. Metrics are on. The channel receives
// a value each time a stubborn call begins.
func stubbornApp(t *testing.T, n int) (*chapkit.App, <-chan struct{}) {
	t.Helper()
	release := make(chan struct{})
	called := make(chan struct{}, 16)
	reg := registry.New()
	registry.MustRegister(reg, "stubborn", func(_ context.Context, _ noParams) (string, error) {
		select {
		case called <- struct{}{}:
		default:
		}
		<-release
		return "late", nil
	})
	registry.MustRegister(reg, "quick", func(_ context.Context, _ noParams) (string, error) { return "done", nil })
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithJobs(chapkit.JobsConfig{MaxConcurrency: n, DrainTimeout: 5 * time.Second, AbandonAfter: 300 * time.Millisecond}).
			WithTasks(reg).WithMonitoring()
	})
	// Registered after the app's own cleanup, so it runs first: the calls
	// return before Shutdown, and no goroutine outlives the test.
	t.Cleanup(func() { close(release) })
	return app, called
}

// waitAbandoned waits until the scheduler counts want abandoned calls.
func waitAbandoned(t *testing.T, app *chapkit.App, want int) {
	t.Helper()
	testkit.Eventually(t, testkit.Deadline, "abandoned calls to be counted", func() bool {
		now, _ := app.Scheduler().Abandoned()
		return now == want
	})
}

// checkDegraded checks that /health is 200 degraded with the abandoned
// calls check, and that the metrics count them.
func checkDegraded(t *testing.T, h http.Handler, node string, now, total int) {
	t.Helper()
	rec := testkit.Request(t, h, http.MethodGet, "/health", "", "")
	body := object(t, rec.Body.Bytes())
	check, _ := body["checks"].(map[string]any)["abandoned_calls"].(map[string]any)
	if rec.Code != http.StatusOK || body["status"] != "degraded" || check["state"] != "degraded" {
		t.Errorf("/health = %d %s, want 200 degraded with an abandoned_calls check", rec.Code, rec.Body.String())
	}
	metrics := testkit.Request(t, h, http.MethodGet, "/metrics", "", "").Body.String()
	for _, want := range []string{
		`chapkit_job_calls_abandoned{node="` + node + `",service_name="Test"} ` + itoa(now) + "\n",
		`chapkit_job_calls_abandoned_total{node="` + node + `",service_name="Test"} ` + itoa(total) + "\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestTimeoutOfAFunctionIgnoringItsContext: the timeout is recorded when
// it fires, the slots come back after the grace period, queued jobs run,
// and /health is degraded while the calls run abandoned.
func TestTimeoutOfAFunctionIgnoringItsContext(t *testing.T) {
	t.Parallel()
	app, _ := stubbornApp(t, 2)
	h := app.Handler()
	slow := createTask(t, h, `{"command":"stubborn","task_type":"python","timeout_seconds":1}`)["id"].(string)
	quick := createTask(t, h, `{"command":"quick","task_type":"python"}`)["id"].(string)
	slowJobs := []string{execute(t, h, slow), execute(t, h, slow)}
	quickJob := execute(t, h, quick)

	for _, id := range slowJobs {
		j := waitJob(t, h, id)
		if j["status"] != "completed" {
			t.Fatalf("slow job = %v, want completed with a TimeoutError artifact", j)
		}
		started, _ := time.Parse(time.RFC3339Nano, j["started_at"].(string))
		finished, _ := time.Parse(time.RFC3339Nano, j["finished_at"].(string))
		if took := finished.Sub(started); took < time.Second || took > 2500*time.Millisecond {
			t.Errorf("slow job took %s from start to finish, want about 1s", took)
		}
		data := artifactData(t, h, j["artifact_id"].(string))
		e, _ := data["error"].(map[string]any)
		if e["type"] != "TimeoutError" || e["message"] != "Task timed out after 1s" || data["result"] != nil {
			t.Errorf("artifact error = %v result = %v, want TimeoutError 'Task timed out after 1s' and null", data["error"], data["result"])
		}
	}
	if j := waitJob(t, h, quickJob); j["status"] != "completed" {
		t.Errorf("quick job = %v, want completed", j)
	}
	waitAbandoned(t, app, 2)
	checkDegraded(t, h, app.Scheduler().NodeID(), 2, 2)
}

// TestCancelOfAFunctionIgnoringItsContext: $cancel is recorded at once
// and the slot comes back after the grace period.
func TestCancelOfAFunctionIgnoringItsContext(t *testing.T) {
	t.Parallel()
	app, called := stubbornApp(t, 1)
	h := app.Handler()
	slowJob := execute(t, h, createTask(t, h, `{"command":"stubborn","task_type":"python"}`)["id"].(string))
	testkit.Eventually(t, testkit.Deadline, "the stubborn job to run", func() bool {
		return getJob(t, h, slowJob)["status"] == "running"
	})
	// A job is running once it holds its slot; the call itself begins a
	// moment later. Cancel only once the call ignoring its context runs.
	select {
	case <-called:
	case <-time.After(testkit.Deadline):
		t.Fatal("the stubborn call did not begin")
	}
	quickJob := execute(t, h, createTask(t, h, `{"command":"quick","task_type":"python"}`)["id"].(string))
	rec := testkit.Request(t, h, http.MethodPost, "/api/v1/jobs/"+slowJob+"/$cancel", "", "")
	if rec.Code != http.StatusAccepted || object(t, rec.Body.Bytes())["status"] != "canceled" {
		t.Fatalf("$cancel = %d %s", rec.Code, rec.Body.String())
	}
	if j := waitJob(t, h, quickJob); j["status"] != "completed" {
		t.Errorf("quick job = %v, want completed once the cancelled call's slot is released", j)
	}
	if j := getJob(t, h, slowJob); j["status"] != "canceled" || j["artifact_id"] != nil {
		t.Errorf("cancelled job = %v, want canceled without an artifact", j)
	}
	waitAbandoned(t, app, 1)
	checkDegraded(t, h, app.Scheduler().NodeID(), 1, 1)
}
