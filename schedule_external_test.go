package chapkit_test

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// TestScheduleHTTP: invalid schedule fields are 422s naming the field; a
// scheduled task shows next_run_at, its planned tick is listed under
// status_filter=scheduled and never in the unfiltered list.
func TestScheduleHTTP(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	for body, field := range map[string]string{
		`{"command":"c","schedule":"every day"}`:                            "schedule",
		`{"command":"c","schedule":"@daily","schedule_timezone":"Nowhere"}`: "schedule_timezone",
	} {
		rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", body, "")
		if rec.Code != http.StatusUnprocessableEntity {
			t.Fatalf("POST %s: %d", body, rec.Code)
		}
		items, _ := object(t, rec.Body.Bytes())["detail"].([]any)
		if len(items) != 1 {
			t.Fatalf("POST %s: %s", body, rec.Body)
		}
		loc, _ := items[0].(map[string]any)["loc"].([]any)
		if len(loc) != 2 || loc[1] != field {
			t.Errorf("POST %s: loc %v, want body.%s", body, loc, field)
		}
	}
	tk := createTask(t, h, `{"command":"echo hi","schedule":"@every 1h","max_attempts":2}`)
	next, _ := tk["next_run_at"].(string)
	at, err := time.Parse(time.RFC3339, next)
	if err != nil || at.Before(time.Now()) || tk["schedule_timezone"] != "UTC" || tk["schedule_overlap"] != "skip" || tk["max_attempts"] != float64(2) {
		t.Fatalf("task = %v", tk)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs?status_filter=scheduled", "", "")
		if jobs := array(t, rec.Body.Bytes()); len(jobs) == 1 {
			j := jobs[0].(map[string]any)
			if !isJobRecord(j) || j["trigger"] != "schedule" || j["status"] != "scheduled" {
				t.Fatalf("scheduled job = %v", j)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no scheduled job listed")
		}
		time.Sleep(20 * time.Millisecond) // polling with a deadline
	}
	if all := array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Body.Bytes()); len(all) != 0 {
		t.Errorf("unfiltered list = %v, want no scheduled jobs", all)
	}
}

// testClock is a clock the test moves by hand. It starts a minute ahead
// of the real one, so tasks created now (stamped with the real clock) lie
// in its past.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	return &testClock{now: time.Now().UTC().Truncate(time.Second).Add(time.Minute)}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// scheduleApp starts the standard test service with metrics, schedules
// and retry delays on clock, and a timetable that looks every 20 ms.
func scheduleApp(t *testing.T, reg *registry.Registry, clock *testClock) http.Handler {
	t.Helper()
	b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Test"}).
		WithDatabase(apptest.DBTarget(t)).
		WithArtifacts(testHierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 4, DrainTimeout: 5 * time.Second, Scheduler: job.Config{PollInterval: 20 * time.Millisecond}}).
		WithTasks(reg, chapkit.TasksConfig{Manager: task.Config{Now: clock.Now}}).
		WithMonitoring()
	return apptest.Start(t, b).Handler()
}

// waitingJobs lists the jobs with status_filter=scheduled.
func waitingJobs(t *testing.T, h http.Handler) []any {
	t.Helper()
	return array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs?status_filter=scheduled", "", "").Body.Bytes())
}

// TestScheduleMetrics: the schedule and retry counters of /metrics move
// by one for a fired tick, a tick skipped while the previous execution
// runs, and a retry; a skipped tick is neither a submitted nor a finished
// job.
func TestScheduleMetrics(t *testing.T) {
	t.Parallel()
	started, release := make(chan struct{}, 4), make(chan struct{})
	reg := registry.New()
	registry.MustRegister(reg, "block", func(ctx context.Context, _ struct{}) (string, error) {
		started <- struct{}{}
		select {
		case <-release:
			return "released", nil
		case <-ctx.Done():
			return "", ctx.Err()
		}
	})
	registry.MustRegister(reg, "fail", func(context.Context, struct{}) (any, error) {
		return nil, registry.NewError("ValueError", "failed on purpose")
	})
	clock := newTestClock()
	h := scheduleApp(t, reg, clock)
	kind := map[string]string{"kind": task.JobKind}
	counters := func() map[string]float64 {
		fams := scrape(t, h, "/metrics")
		out := map[string]float64{}
		for _, name := range []string{"chapkit_schedule_ticks_fired_total", "chapkit_schedule_ticks_skipped_total",
			"chapkit_job_retries_total", "chapkit_jobs_submitted_total"} {
			out[name], _ = sample(fams, name, kind)
		}
		out["canceled"], _ = sample(fams, "chapkit_jobs_finished_total", map[string]string{"kind": task.JobKind, "status": "canceled"})
		return out
	}
	want := map[string]float64{"chapkit_schedule_ticks_fired_total": 0, "chapkit_schedule_ticks_skipped_total": 0,
		"chapkit_job_retries_total": 0, "chapkit_jobs_submitted_total": 0, "canceled": 0}
	check := func(what string) {
		t.Helper()
		if diff := cmp.Diff(want, counters()); diff != "" {
			t.Errorf("%s: counters (-want +got):\n%s", what, diff)
		}
	}
	untilCounted := func(what, name string, v float64) {
		t.Helper()
		testkit.Eventually(t, 20*time.Second, what, func() bool { return counters()[name] == v })
	}

	tk := createTask(t, h, `{"command":"block","task_type":"python","schedule":"@every 10s"}`)
	testkit.Eventually(t, 10*time.Second, "the first tick is planned", func() bool { return len(waitingJobs(t, h)) == 1 })
	check("a planned tick")

	clock.Add(10 * time.Second)
	untilCounted("the first tick fires", "chapkit_schedule_ticks_fired_total", 1)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the first tick's execution did not start")
	}
	want["chapkit_schedule_ticks_fired_total"], want["chapkit_jobs_submitted_total"] = 1, 1
	check("a fired tick")

	clock.Add(10 * time.Second) // the first execution still runs
	untilCounted("the second tick is skipped", "chapkit_schedule_ticks_skipped_total", 1)
	want["chapkit_schedule_ticks_skipped_total"] = 1
	check("a skipped tick")
	close(release)
	doJSON(t, h, http.MethodPatch, "/api/v1/tasks/"+tk["id"].(string), `{"enabled":false}`)

	failing := createTask(t, h, `{"command":"fail","task_type":"python","max_attempts":2,"retry_delay_seconds":1}`)
	waitJob(t, h, execute(t, h, failing["id"].(string)))
	testkit.Eventually(t, 10*time.Second, "the retry is planned", func() bool {
		for _, j := range waitingJobs(t, h) {
			if j.(map[string]any)["trigger"] == "retry" {
				return true
			}
		}
		return false
	})
	want["chapkit_jobs_submitted_total"]++ // $execute
	check("a planned retry")
	clock.Add(2 * time.Second)
	untilCounted("the retry starts", "chapkit_job_retries_total", 1)
	want["chapkit_job_retries_total"] = 1
	want["chapkit_jobs_submitted_total"]++ // the retry, once due
	check("a retry")
}

// TestScheduleDeleteWaitingTick: DELETE /api/v1/jobs/{id} of a waiting
// tick removes it (404 after) and skips that tick: it is not planned
// again, and the tick after it is planned when its time has passed.
func TestScheduleDeleteWaitingTick(t *testing.T) {
	t.Parallel()
	clock := newTestClock()
	h := scheduleApp(t, registry.New(), clock)
	ids := func() []string {
		var out []string
		for _, j := range waitingJobs(t, h) {
			out = append(out, j.(map[string]any)["id"].(string))
		}
		return out
	}
	one := func(what string) string {
		t.Helper()
		var id string
		testkit.Eventually(t, 10*time.Second, what, func() bool {
			got := ids()
			if len(got) == 1 {
				id = got[0]
			}
			return id != ""
		})
		return id
	}
	createTask(t, h, `{"command":"echo tick","schedule":"@every 10s"}`)
	tick := one("the tick is planned")
	if rec := testkit.Request(t, h, http.MethodDelete, "/api/v1/jobs/"+tick, "", ""); rec.Code != http.StatusNoContent {
		t.Fatalf("DELETE waiting tick: %d %s", rec.Code, rec.Body)
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs/"+tick, "", ""); rec.Code != http.StatusNotFound {
		t.Fatalf("GET deleted tick: %d", rec.Code)
	}
	// A witness schedule tells when the timetable has stepped: its tick
	// 9 s on fires in the same step that plans the first task again, if
	// anything did.
	createTask(t, h, `{"command":"echo witness","schedule":"@every 9s"}`)
	witness := one("the witness tick is planned, and nothing else")
	clock.Add(9 * time.Second)
	testkit.Eventually(t, 10*time.Second, "the witness tick fires", func() bool {
		got := ids()
		return len(got) > 0 && !slices.Contains(got, witness)
	})
	if got := ids(); len(got) != 1 {
		t.Fatalf("waiting jobs %v: the deleted tick was planned again", got)
	}
	clock.Add(time.Second) // the deleted tick's time
	testkit.Eventually(t, 10*time.Second, "the tick after the deleted one is planned", func() bool { return len(ids()) == 2 })
	jobs := array(t, testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", "").Body.Bytes())
	if len(jobs) != 1 || jobs[0].(map[string]any)["id"] != witness {
		t.Errorf("jobs = %v, want only the witness tick: the deleted tick did not run", jobs)
	}
}
