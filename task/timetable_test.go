package task

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/registry"
)

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *fakeClock {
	// Ahead of the real clock, so tasks created now (their updated_at is
	// real time) lie in the fake past.
	return &fakeClock{now: time.Now().UTC().Truncate(time.Second).Add(time.Minute)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestScheduleNext(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	ticks := func(expr, zone, from string, n int) []string {
		s, err := ParseSchedule(expr, zone)
		if err != nil {
			t.Fatalf("ParseSchedule(%q, %q): %v", expr, zone, err)
		}
		var out []string
		cur := at(from)
		for range n {
			cur = s.Next(cur)
			out = append(out, cur.Format(time.RFC3339))
		}
		return out
	}
	for _, tc := range []struct {
		name, expr, zone, from string
		want                   []string
	}{
		{"five fields", "*/15 * * * *", "", "2026-01-01T10:07:00Z", []string{"2026-01-01T10:15:00Z", "2026-01-01T10:30:00Z", "2026-01-01T10:45:00Z"}},
		{"six fields with seconds", "*/20 * * * * *", "UTC", "2026-01-01T10:00:05Z", []string{"2026-01-01T10:00:20Z", "2026-01-01T10:00:40Z", "2026-01-01T10:01:00Z"}},
		{"descriptor", "@hourly", "", "2026-01-01T10:07:00Z", []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"every", "@every 30s", "", "2026-01-01T10:00:00Z", []string{"2026-01-01T10:00:30Z", "2026-01-01T10:01:00Z"}},
		// 03:00 in New York is 08:00 UTC before the change to daylight
		// saving time on 2026-03-08 and 07:00 UTC from that day on.
		{"time zone across DST", "0 3 * * *", "America/New_York", "2026-03-06T12:00:00Z",
			[]string{"2026-03-07T08:00:00Z", "2026-03-08T07:00:00Z", "2026-03-09T07:00:00Z"}},
		{"daily in a zone", "@daily", "Europe/Berlin", "2026-01-01T12:00:00Z", []string{"2026-01-01T23:00:00Z", "2026-01-02T23:00:00Z"}},
	} {
		if diff := cmp.Diff(tc.want, ticks(tc.expr, tc.zone, tc.from, len(tc.want))); diff != "" {
			t.Errorf("%s: ticks (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestScheduleValidation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		body, field string
	}{
		{`{"command":"c","schedule":"not cron"}`, "schedule"},
		{`{"command":"c","schedule":"61 * * * *"}`, "schedule"},
		{`{"command":"c","schedule":"TZ=UTC * * * * *"}`, "schedule"},
		{`{"command":"c","schedule":"@daily","schedule_timezone":"Mars/Olympus"}`, "schedule_timezone"},
		{`{"command":"c","schedule":"@daily","schedule_overlap":"queue"}`, "schedule_overlap"},
		{`{"command":"c","max_attempts":0}`, "max_attempts"},
		{`{"command":"c","retry_delay_seconds":-1}`, "retry_delay_seconds"},
		{`{"command":"c","retry_on_exit_codes":"some"}`, "retry_on_exit_codes"},
		{`{"command":"c","retry_on_exit_codes":[0]}`, "retry_on_exit_codes"},
	} {
		_, err := DecodeIn(mustDecode(t, tc.body))
		var p *problem.Error
		if err == nil || !errors.As(err, &p) || len(p.Items) != 1 {
			t.Errorf("DecodeIn(%s) = %v, want one violation", tc.body, err)
			continue
		}
		if diff := cmp.Diff([]any{"body", tc.field}, p.Items[0].Loc); diff != "" {
			t.Errorf("DecodeIn(%s): loc (-want +got):\n%s", tc.body, diff)
		}
	}
	in := mustIn(t, `{"command":"c","schedule":"@every 5s","schedule_timezone":"America/New_York","schedule_overlap":"allow",
		"schedule_catch_up":true,"max_attempts":3,"retry_delay_seconds":0.5,"retry_max_delay_seconds":10,"retry_on_exit_codes":[2,3]}`)
	if in.Options.Schedule == nil || *in.Options.MaxAttempts != 3 || *in.Options.RetryOnExitCodes != "[2,3]" {
		t.Errorf("options = %+v", in.Options)
	}
}

func TestTaskOutOptions(t *testing.T) {
	t.Parallel()
	m, _ := newStore(t)
	plain := mustCreate(t, m, `{"command":"c"}`).Out()
	if plain.Schedule != nil || plain.NextRunAt != nil || plain.MaxAttempts != nil || plain.RetryOnExitCodes != nil {
		t.Errorf("a task without schedule or retries shows %+v", plain)
	}
	tk := mustCreate(t, m, `{"command":"c","schedule":"0 3 * * *","schedule_timezone":"America/New_York","max_attempts":2}`)
	out := tk.OutAt(time.Date(2026, 3, 7, 12, 0, 0, 0, time.UTC))
	if got := string(out.NextRunAt); got != `"2026-03-08T07:00:00Z"` {
		t.Errorf("next_run_at = %s", got)
	}
	if *out.ScheduleOverlap != OverlapSkip || *out.ScheduleCatchUp || *out.RetryDelaySeconds != 1 || *out.RetryMaxDelaySeconds != 300 || string(out.RetryOnExitCodes) != "null" {
		t.Errorf("defaults not shown: %+v", out)
	}
	// PATCH null removes the schedule; PUT without it keeps it.
	put, err := m.Update(t.Context(), tk.ID, mustIn(t, `{"command":"d"}`))
	if err != nil || put.Options.Schedule == nil {
		t.Fatalf("PUT without schedule: %v, %+v", err, put)
	}
	patched, err := m.Patch(t.Context(), tk.ID, []byte(`{"schedule":null}`))
	if err != nil || patched.Options.Schedule != nil || patched.Options.MaxAttempts == nil {
		t.Fatalf("PATCH schedule null: %v, %+v", err, patched)
	}
	disabled, err := m.Patch(t.Context(), tk.ID, []byte(`{"schedule":"@hourly","enabled":false}`))
	if err != nil || string(disabled.Out().NextRunAt) != "null" {
		t.Fatalf("disabled task next_run_at: %v, %s", err, disabled.Out().NextRunAt)
	}
}

// startedAt records that the test's node started at at (its row in
// chapkit_nodes): the node came up after an outage that ended then.
func startedAt(t *testing.T, b *testBundle, at time.Time) {
	t.Helper()
	if err := b.db.Exec("UPDATE chapkit_nodes SET started_ms = ? WHERE id = ?", at.UnixMilli(), b.sched.NodeID()).Error; err != nil {
		t.Fatal(err)
	}
}

// scheduled returns the waiting rows.
func scheduled(t *testing.T, b *testBundle) []job.Job {
	t.Helper()
	jobs, err := b.sched.List(t.Context(), job.StatusScheduled)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func step(t *testing.T, tt *Timetable) {
	t.Helper()
	if err := tt.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// seriesJobs lists the jobs of a task's schedule by status.
func seriesJobs(t *testing.T, b *testBundle, taskID string) map[job.Status]int {
	t.Helper()
	var rows []job.Job
	if err := b.db.Where("series = ?", taskID).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[job.Status]int{}
	for _, r := range rows {
		out[r.Status]++
	}
	return out
}

// gone checks that the one waiting tick of before was skipped: its row
// is removed.
func gone(t *testing.T, b *testBundle, before []job.Job) {
	t.Helper()
	if len(before) != 1 {
		t.Fatalf("want one waiting tick, got %d", len(before))
	}
	if j, err := b.sched.Get(t.Context(), before[0].ID); !errors.Is(err, job.ErrNotFound) {
		t.Errorf("skipped tick %s: %+v, %v; want no row", before[0].ID, j, err)
	}
}

// finishedTick waits for the job promoted at the last step to finish.
func finishedTick(t *testing.T, b *testBundle, before []job.Job) *job.Job {
	t.Helper()
	if len(before) != 1 {
		t.Fatalf("want one waiting tick, got %d", len(before))
	}
	return waitJob(t, b, before[0].ID)
}

func TestTimetableTicks(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 10s"}`)

	step(t, tt)
	waiting := scheduled(t, b)
	if len(waiting) != 1 || !waiting[0].RunAt.Equal(clock.Now().Add(10*time.Second)) || *waiting[0].Trigger != job.TriggerSchedule {
		t.Fatalf("after the first step: %+v", waiting)
	}
	step(t, tt) // nothing due: nothing changes
	if again := scheduled(t, b); len(again) != 1 || again[0].ID != waiting[0].ID {
		t.Fatalf("a second step planned again: %+v", again)
	}
	for i := range 3 {
		clock.Add(10 * time.Second)
		step(t, tt)
		j := finishedTick(t, b, waiting)
		if j.Status != job.StatusCompleted || *j.Trigger != job.TriggerSchedule {
			t.Fatalf("tick %d: %+v", i, j)
		}
		waiting = scheduled(t, b)
	}
	if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 3, job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("jobs of the schedule (-want +got):\n%s", diff)
	}
	// Unfiltered lists leave the waiting tick out.
	all, err := b.sched.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.Status == job.StatusScheduled {
			t.Errorf("unfiltered list shows scheduled job %s", j.ID)
		}
	}
	// Disabling the task removes its waiting tick; nothing fires.
	if _, err := b.mgr.Patch(t.Context(), tk.ID, []byte(`{"enabled":false}`)); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second)
	step(t, tt)
	if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 3}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("after disabling (-want +got):\n%s", diff)
	}
}

func TestTimetableOverlap(t *testing.T) {
	t.Parallel()
	for _, overlap := range []string{OverlapSkip, OverlapAllow} {
		t.Run(overlap, func(t *testing.T) {
			t.Parallel()
			g := newGate()
			b := setup(t, setupOpts{register: g.register})
			clock := newClock()
			tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
			tk := mustCreate(t, b.mgr, `{"command":"block","task_type":"python","schedule":"@every 10s","schedule_overlap":"`+overlap+`"}`)
			step(t, tt)
			first := scheduled(t, b)
			clock.Add(10 * time.Second)
			step(t, tt)
			select {
			case <-g.started:
			case <-time.After(10 * time.Second):
				t.Fatal("first tick did not start")
			}
			second := scheduled(t, b)
			clock.Add(10 * time.Second)
			step(t, tt) // the first execution still runs
			if overlap == OverlapSkip {
				gone(t, b, second)
			} else {
				select {
				case <-g.started:
				case <-time.After(10 * time.Second):
					t.Fatal("second tick did not start beside the first")
				}
			}
			close(g.release)
			if j := finishedTick(t, b, first); j.Status != job.StatusCompleted {
				t.Errorf("first tick = %s", j.Status)
			}
			want := map[job.Status]int{job.StatusCompleted: 1, job.StatusScheduled: 1}
			if overlap == OverlapAllow {
				waitJob(t, b, second[0].ID)
				want = map[job.Status]int{job.StatusCompleted: 2, job.StatusScheduled: 1}
			}
			if diff := cmp.Diff(want, seriesJobs(t, b, tk.ID)); diff != "" {
				t.Errorf("jobs of the schedule (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTimetableCatchUp(t *testing.T) {
	t.Parallel()
	for _, catchUp := range []bool{false, true} {
		name := map[bool]string{false: "missed ticks skipped", true: "one catch-up run"}[catchUp]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, setupOpts{})
			clock := newClock()
			body := `{"command":"echo x","schedule":"@every 10s","schedule_catch_up":false}`
			if catchUp {
				body = `{"command":"echo x","schedule":"@every 10s","schedule_catch_up":true}`
			}
			tk := mustCreate(t, b.mgr, body)
			step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
			waiting := scheduled(t, b)
			// No node runs for half an hour: 180 ticks are missed.
			clock.Add(30 * time.Minute)
			startedAt(t, b, clock.Now().Add(-time.Second))
			step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
			want := map[job.Status]int{job.StatusScheduled: 1}
			if catchUp {
				want = map[job.Status]int{job.StatusCompleted: 1, job.StatusScheduled: 1}
				if j := finishedTick(t, b, waiting); j.Status != job.StatusCompleted {
					t.Errorf("catch-up tick = %s", j.Status)
				}
			} else {
				gone(t, b, waiting)
			}
			if diff := cmp.Diff(want, seriesJobs(t, b, tk.ID)); diff != "" {
				t.Errorf("jobs of the schedule (-want +got):\n%s", diff)
			}
			if next := scheduled(t, b); len(next) != 1 || !next[0].RunAt.After(clock.Now()) {
				t.Errorf("next tick not planned after now: %+v", next)
			}
		})
	}
}

func TestTimetableRestartAndConcurrentSteps(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tk := mustCreate(t, b.mgr, `{"command":"echo x","schedule":"@every 10s"}`)
	step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
	waiting := scheduled(t, b)
	// A new process takes over between ticks: several timetables step at
	// the same moment; the tick still runs once.
	clock.Add(10 * time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}).Step(context.Background())
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	finishedTick(t, b, waiting)
	if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 1, job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("jobs of the schedule (-want +got):\n%s", diff)
	}
}

func TestRetries(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{register: registerFunctions})
	clock := newClock()
	b.mgr.cfg.Now = clock.Now
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"designed_to_fail","task_type":"python","max_attempts":3,"retry_delay_seconds":10,"retry_max_delay_seconds":15}`)
	first := runTask(t, b, tk.ID)
	if first.Attempt != 1 || *first.Trigger != job.TriggerAPI {
		t.Fatalf("first attempt: %+v", first)
	}
	completedData(t, b, first)
	// Attempt 2 waits 10 s less up to a fifth; attempt 3 min(20, 15) s less up to a fifth.
	for _, a := range []struct {
		attempt  int
		min, max time.Duration
	}{{2, 8 * time.Second, 10 * time.Second}, {3, 12 * time.Second, 15 * time.Second}} {
		waiting := scheduled(t, b)
		if len(waiting) != 1 {
			t.Fatalf("attempt %d: %d waiting rows", a.attempt, len(waiting))
		}
		r := waiting[0]
		delay := r.RunAt.Sub(clock.Now())
		if r.Attempt != a.attempt || *r.RetryOf != first.ID || *r.Trigger != job.TriggerRetry || delay < a.min || delay > a.max {
			t.Fatalf("attempt %d: attempt %d retry_of %v delay %s", a.attempt, r.Attempt, deref(r.RetryOf), delay)
		}
		clock.Add(delay - time.Millisecond)
		step(t, tt)
		if got := scheduled(t, b); len(got) != 1 {
			t.Fatalf("attempt %d promoted before its time", a.attempt)
		}
		clock.Add(time.Millisecond)
		step(t, tt)
		j := waitJob(t, b, r.ID)
		data := completedData(t, b, j)
		if data["error"] == nil {
			t.Errorf("attempt %d stored no error", a.attempt)
		}
	}
	if got := scheduled(t, b); len(got) != 0 {
		t.Errorf("a fourth attempt was planned: %+v", got)
	}
	if n := countArtifacts(t, b); n != 3 {
		t.Errorf("artifacts = %d, want one per attempt", n)
	}
}

func TestShellRetryExitCodes(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	for _, tc := range []struct {
		codes string
		retry bool
	}{{`[3]`, true}, {`[4]`, false}, {`"any"`, true}, {`null`, false}} {
		tk := mustCreate(t, b.mgr, `{"command":"exit 3","max_attempts":2,"retry_delay_seconds":60,"retry_on_exit_codes":`+tc.codes+`}`)
		j := runTask(t, b, tk.ID)
		completedData(t, b, j)
		var n int64
		if err := b.db.Model(&job.Job{}).Where("retry_of = ?", j.ID).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if (n == 1) != tc.retry || n > 1 {
			t.Errorf("retry_on_exit_codes %s: %d retries", tc.codes, n)
		}
	}
}

func TestCancelRetryChain(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{register: registerFunctions})
	clock := newClock()
	b.mgr.cfg.Now = clock.Now
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"panics","task_type":"python","max_attempts":5,"retry_delay_seconds":1}`)
	runTask(t, b, tk.ID)
	waiting := scheduled(t, b)
	if len(waiting) != 1 {
		t.Fatalf("a panic was not retried: %+v", waiting)
	}
	c, err := b.sched.Cancel(t.Context(), waiting[0].ID)
	if err != nil || c.Status != job.StatusCanceled {
		t.Fatalf("cancel waiting retry: %v %+v", err, c)
	}
	clock.Add(time.Hour)
	step(t, tt)
	var n int64
	if err := b.db.Model(&job.Job{}).Where("status <> ?", job.StatusCanceled).Where("retry_of IS NOT NULL").Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 || len(scheduled(t, b)) != 0 {
		t.Errorf("the chain went on after cancel: %d attempts", n)
	}
}

// TestTimetableDeletedTick: DELETE of a waiting tick skips that tick: it
// is not planned again, and the schedule goes on with the next one.
func TestTimetableDeletedTick(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 10s"}`)
	step(t, tt)
	waiting := scheduled(t, b)
	if len(waiting) != 1 {
		t.Fatalf("waiting ticks: %+v", waiting)
	}
	if err := b.sched.Delete(t.Context(), waiting[0].ID); err != nil {
		t.Fatal(err)
	}
	step(t, tt)
	if again := scheduled(t, b); len(again) != 0 {
		t.Fatalf("the deleted tick was planned again: %+v", again)
	}
	clock.Add(10 * time.Second) // the deleted tick's time
	step(t, tt)
	next := scheduled(t, b)
	if len(next) != 1 || !next[0].RunAt.Equal(waiting[0].RunAt.Add(10*time.Second)) {
		t.Fatalf("after the deleted tick's time: %+v, want the tick after it", next)
	}
	if diff := cmp.Diff(map[job.Status]int{job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("the deleted tick ran (-want +got):\n%s", diff)
	}
	clock.Add(10 * time.Second)
	step(t, tt)
	if j := finishedTick(t, b, next); j.Status != job.StatusCompleted {
		t.Errorf("tick after the deleted one = %s", j.Status)
	}
}

// TestTimetableMissedTicks: a late tick runs when some node ran at its
// time (the leader died and another took over, however long the
// hand-over took compared to the rescue horizon), and is missed when no
// node ran (a restart after an outage, even a short one).
func TestTimetableMissedTicks(t *testing.T) {
	t.Parallel()
	t.Run("leader change longer than the rescue horizon", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{}) // 15 s horizon
		clock := newClock()
		tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 10s","schedule_overlap":"allow"}`)
		step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
		// The leader dies before its first tick; its successor, a node
		// that ran all along, steps 45 s after that tick: 5 ticks fell due.
		clock.Add(10*time.Second + 45*time.Second)
		step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
		testkit.Eventually(t, 20*time.Second, "the five late ticks run", func() bool {
			return seriesJobs(t, b, tk.ID)[job.StatusCompleted] == 5
		})
		if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 5, job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
			t.Errorf("jobs of the schedule (-want +got):\n%s", diff)
		}
	})
	t.Run("restart after a short outage", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{rescueAfter: 5 * time.Minute})
		clock := newClock()
		tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 1s","schedule_overlap":"allow"}`)
		step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
		waiting := scheduled(t, b)
		// The only node is down for 10 s, far within the rescue horizon.
		clock.Add(10 * time.Second)
		startedAt(t, b, clock.Now())
		step(t, NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}))
		gone(t, b, waiting)
		next := scheduled(t, b)
		if len(next) != 1 || !next[0].RunAt.After(clock.Now()) {
			t.Fatalf("next tick: %+v, want one after now", next)
		}
		if diff := cmp.Diff(map[job.Status]int{job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
			t.Errorf("a missed tick ran (-want +got):\n%s", diff)
		}
	})
	t.Run("stall past the cap", func(t *testing.T) {
		t.Parallel()
		b := setup(t, setupOpts{})
		clock := newClock()
		tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 10s","schedule_overlap":"allow"}`)
		cfg := TimetableConfig{Now: clock.Now, StaleAfter: 30 * time.Second}
		step(t, NewTimetable(b.mgr, b.sched, cfg))
		waiting := scheduled(t, b)
		clock.Add(10*time.Second + 45*time.Second)
		step(t, NewTimetable(b.mgr, b.sched, cfg))
		gone(t, b, waiting)
		if diff := cmp.Diff(map[job.Status]int{job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
			t.Errorf("ticks older than the cap ran (-want +got):\n%s", diff)
		}
	})
}

// TestTimetableOverlapWithExecute: with overlap "skip", a tick is skipped
// while an execution started by $execute still runs, as it is for one
// started by a tick.
func TestTimetableOverlapWithExecute(t *testing.T) {
	t.Parallel()
	g := newGate()
	b := setup(t, setupOpts{register: g.register})
	clock := newClock()
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"block","task_type":"python","schedule":"@every 10s"}`)
	step(t, tt)
	waiting := scheduled(t, b)
	jobID, err := b.mgr.Execute(t.Context(), tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the execution did not start")
	}
	clock.Add(10 * time.Second)
	step(t, tt)
	gone(t, b, waiting)
	close(g.release)
	if j := waitJob(t, b, jobID); j.Status != job.StatusCompleted {
		t.Fatalf("execution = %s", j.Status)
	}
	// Once it has finished, the next tick runs.
	next := scheduled(t, b)
	clock.Add(10 * time.Second)
	step(t, tt)
	if j := finishedTick(t, b, next); j.Status != job.StatusCompleted {
		t.Errorf("tick after the execution = %s", j.Status)
	}
}

// TestTimetableReenabled: a disabled task does not fire, and enabling it
// again does not replay the ticks it missed meanwhile: its schedule
// starts afresh.
func TestTimetableReenabled(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"echo tick","schedule":"@every 10s"}`)
	step(t, tt)
	first := scheduled(t, b)
	clock.Add(10 * time.Second)
	step(t, tt)
	finishedTick(t, b, first)
	if _, err := b.mgr.Patch(t.Context(), tk.ID, []byte(`{"enabled":false}`)); err != nil {
		t.Fatal(err)
	}
	clock.Add(10 * time.Second) // a tick falls due while disabled
	step(t, tt)
	if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("while disabled (-want +got):\n%s", diff)
	}
	clock.Add(5 * time.Second)
	if _, err := b.mgr.Patch(t.Context(), tk.ID, []byte(`{"enabled":true}`)); err != nil {
		t.Fatal(err)
	}
	step(t, tt)
	next := scheduled(t, b)
	if len(next) != 1 || !next[0].RunAt.Equal(clock.Now().Add(10*time.Second)) {
		t.Fatalf("after enabling: %+v, want one tick 10 s after now", next)
	}
	if diff := cmp.Diff(map[job.Status]int{job.StatusCompleted: 1, job.StatusScheduled: 1}, seriesJobs(t, b, tk.ID)); diff != "" {
		t.Errorf("the missed tick was replayed (-want +got):\n%s", diff)
	}
	clock.Add(10 * time.Second)
	step(t, tt)
	if j := finishedTick(t, b, next); j.Status != job.StatusCompleted {
		t.Errorf("first tick after enabling = %s", j.Status)
	}
}

// patchAt patches a task and dates the change at the fake clock's now,
// the clock the timetable judges by.
func patchAt(t *testing.T, b *testBundle, clock *fakeClock, id, body string) {
	t.Helper()
	if _, err := b.mgr.Patch(t.Context(), id, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := b.db.Model(&Task{}).Where("id = ?", id).Update("updated_at", clock.Now()).Error; err != nil {
		t.Fatal(err)
	}
}

// TestTimetableChangesOtherThanSchedule: changing a task's command more
// often than its @every interval neither moves nor drops its ticks; only
// a change of expression or time zone moves the waiting tick.
func TestTimetableChangesOtherThanSchedule(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	tk := mustCreate(t, b.mgr, `{"command":"echo a","schedule":"@every 10s"}`)
	step(t, tt)
	for i := range 3 {
		waiting := scheduled(t, b)
		clock.Add(6 * time.Second)
		patchAt(t, b, clock, tk.ID, `{"command":"echo b`+string(rune('0'+i))+`"}`)
		step(t, tt)
		if again := scheduled(t, b); len(again) != 1 || again[0].ID != waiting[0].ID {
			t.Fatalf("round %d: a command change moved the waiting tick: %+v, was %+v", i, again, waiting)
		}
		clock.Add(4 * time.Second)
		step(t, tt)
		if j := finishedTick(t, b, waiting); j.Status != job.StatusCompleted {
			t.Fatalf("round %d: tick = %s", i, j.Status)
		}
	}
	// A new time zone moves the waiting tick of a cron schedule.
	cron := mustCreate(t, b.mgr, `{"command":"echo c","schedule":"0 3 * * *"}`)
	step(t, tt)
	before := seriesRows(t, b, cron.ID)
	patchAt(t, b, clock, cron.ID, `{"schedule_timezone":"America/New_York"}`)
	step(t, tt)
	after := seriesRows(t, b, cron.ID)
	sch, err := ParseSchedule("0 3 * * *", "America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 1 || len(after) != 1 || after[0].ID == before[0].ID || !after[0].RunAt.Equal(sch.Next(clock.Now())) {
		t.Fatalf("after the zone change: %+v (before %+v), want one tick at %s", after, before, sch.Next(clock.Now()))
	}
	// A new expression moves it too; changing it back moves it back.
	patchAt(t, b, clock, cron.ID, `{"schedule":"30 4 * * *"}`)
	step(t, tt)
	sch, _ = ParseSchedule("30 4 * * *", "America/New_York")
	if rows := seriesRows(t, b, cron.ID); len(rows) != 1 || !rows[0].RunAt.Equal(sch.Next(clock.Now())) {
		t.Fatalf("after the expression change: %+v, want one tick at %s", rows, sch.Next(clock.Now()))
	}
}

// seriesRows returns the waiting ticks of a task's schedule.
func seriesRows(t *testing.T, b *testBundle, taskID string) []job.Job {
	t.Helper()
	var rows []job.Job
	if err := b.db.Where("series = ? AND status = ?", taskID, job.StatusScheduled).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestTimetableTwoTimetablesWhileChanging: two timetables step over one
// database at the same moments while one task's schedule changes and
// another is disabled; every tick runs once, and the disabled task stops.
func TestTimetableTwoTimetablesWhileChanging(t *testing.T) {
	t.Parallel()
	b := setup(t, setupOpts{})
	clock := newClock()
	tts := []*Timetable{NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now}), NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})}
	steady := mustCreate(t, b.mgr, `{"command":"echo s","schedule":"@every 10s","schedule_overlap":"allow"}`)
	changed := mustCreate(t, b.mgr, `{"command":"echo c","schedule":"@every 10s","schedule_overlap":"allow"}`)
	stopped := mustCreate(t, b.mgr, `{"command":"echo d","schedule":"@every 10s","schedule_overlap":"allow"}`)
	both := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, len(tts))
		for _, tt := range tts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- tt.Step(context.Background())
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	both()
	for i := range 6 {
		clock.Add(10 * time.Second)
		switch i {
		case 2:
			patchAt(t, b, clock, changed.ID, `{"schedule":"@every 20s"}`)
			patchAt(t, b, clock, stopped.ID, `{"enabled":false}`)
		case 3:
			patchAt(t, b, clock, steady.ID, `{"command":"echo s2"}`)
		}
		both()
	}
	want := map[string]int{steady.ID: 6, changed.ID: 2 + 2, stopped.ID: 2}
	testkit.Eventually(t, 20*time.Second, "the ticks run", func() bool {
		for id, n := range want {
			if seriesJobs(t, b, id)[job.StatusCompleted] != n {
				return false
			}
		}
		return true
	})
	for id, n := range want {
		var rows []job.Job
		if err := b.db.Where("series = ? AND status <> ?", id, job.StatusScheduled).Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		ticks := map[time.Time]int{}
		for _, r := range rows {
			ticks[r.RunAt.UTC()]++
		}
		if len(rows) != n || len(ticks) != n {
			t.Errorf("task %s: %d executions at %d tick times, want %d once each", id, len(rows), len(ticks), n)
		}
	}
	if rows := seriesRows(t, b, stopped.ID); len(rows) != 0 {
		t.Errorf("the disabled task still has waiting ticks: %+v", rows)
	}
}

// TestTimetableRetryWaitsForRunningTick: with overlap "skip", a retry
// whose delay passes while the next tick runs does not start beside it;
// it waits and runs once that tick has ended.
func TestTimetableRetryWaitsForRunningTick(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	started := make(chan struct{}, 4)
	release := make(chan struct{})
	b := setup(t, setupOpts{register: func(tb testing.TB, reg *registry.Registry) {
		err := registry.Register(reg, "flaky", func(ctx context.Context, _ struct{}) (string, error) {
			if calls.Add(1) == 1 {
				return "", errors.New("first call fails")
			}
			started <- struct{}{}
			select {
			case <-release:
				return "ok", nil
			case <-ctx.Done():
				return "", ctx.Err()
			}
		})
		if err != nil {
			tb.Fatal(err)
		}
	}})
	clock := newClock()
	b.mgr.cfg.Now = clock.Now
	tt := NewTimetable(b.mgr, b.sched, TimetableConfig{Now: clock.Now})
	mustCreate(t, b.mgr, `{"command":"flaky","task_type":"python","schedule":"@every 60s","max_attempts":2,"retry_delay_seconds":90}`)
	step(t, tt)
	first := scheduled(t, b)
	clock.Add(60 * time.Second)
	step(t, tt)
	if j := finishedTick(t, b, first); j.Status != job.StatusCompleted {
		t.Fatalf("first tick = %s", j.Status)
	}
	var retry job.Job
	if err := b.db.Where("retry_of = ?", first[0].ID).First(&retry).Error; err != nil {
		t.Fatalf("no retry of the failed tick: %v", err)
	}
	// The next tick comes before the retry's time and runs.
	clock.Add(60 * time.Second)
	step(t, tt)
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the second tick did not start")
	}
	// The retry falls due while the second tick runs: it waits.
	clock.Set(retry.RunAt.Add(time.Second))
	step(t, tt)
	r, err := b.sched.Get(t.Context(), retry.ID)
	if err != nil || r.Status != job.StatusScheduled || !r.RunAt.After(clock.Now()) {
		t.Fatalf("retry while a tick runs: %v %+v, want it waiting past now", err, r)
	}
	close(release)
	testkit.Eventually(t, 20*time.Second, "the second tick ends", func() bool { return len(runningJobs(t, b)) == 0 })
	clock.Add(2 * time.Second)
	step(t, tt)
	if j := waitJob(t, b, retry.ID); j.Status != job.StatusCompleted || j.Attempt != 2 {
		t.Fatalf("retry after the tick = %s attempt %d", j.Status, j.Attempt)
	}
}

// runningJobs returns the pending and running jobs.
func runningJobs(t *testing.T, b *testBundle) []job.Job {
	t.Helper()
	var rows []job.Job
	if err := b.db.Where("status IN ?", []job.Status{job.StatusPending, job.StatusRunning}).Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	return rows
}
