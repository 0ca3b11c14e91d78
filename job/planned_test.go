package job

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// TestPlanOncePerTick: three nodes on one database plan and promote the
// same ticks at the same moments; each tick is stored once, promoted
// once and run once. Runs on SQLite and, through TestPostgres, on
// PostgreSQL.
func TestPlanOncePerTick(t *testing.T) {
	db := openDB(t)
	var runs sync.Map // job id → *atomic.Int32
	done := make(chan string, 100)
	h := func(_ context.Context, r *Run) (any, error) {
		n, _ := runs.LoadOrStore(r.Job.ID, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		done <- r.Job.ID
		return nil, nil
	}
	cfg := Config{PollInterval: 20 * time.Millisecond}
	nodes := []*Scheduler{startNode(t, db, cfg, h), startNode(t, db, cfg, h), startNode(t, db, cfg, h)}
	base := time.Now().UTC().Truncate(time.Second)
	const ticks = 5
	for i := range ticks {
		at := base.Add(time.Duration(i) * time.Second)
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := n.Plan(context.Background(), "count", nil, "series-1", "@every 1s", at.Add(-time.Second), at); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	var waiting []Job
	if err := db.Where("status = ?", StatusScheduled).Order("run_at").Find(&waiting).Error; err != nil {
		t.Fatal(err)
	}
	if len(waiting) != ticks {
		t.Fatalf("planned %d rows for %d ticks", len(waiting), ticks)
	}
	// Everything is due: all nodes promote all rows at once.
	var promoted atomic.Int32
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due, err := n.Due(context.Background(), base.Add(time.Hour), 100)
			if err != nil {
				t.Error(err)
				return
			}
			for i := range due {
				ok, err := n.Promote(context.Background(), &due[i])
				if err != nil {
					t.Error(err)
				}
				if ok {
					promoted.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if promoted.Load() != ticks {
		t.Fatalf("promoted %d times for %d ticks", promoted.Load(), ticks)
	}
	for range ticks {
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatal("promoted ticks did not all run")
		}
	}
	for _, w := range waiting {
		j, err := nodes[0].Wait(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := runs.Load(w.ID)
		if j.Status != StatusCompleted || n == nil || n.(*atomic.Int32).Load() != 1 || *j.Trigger != TriggerSchedule {
			t.Errorf("tick %s: status %s", w.RunAt, j.Status)
		}
	}
	// A skipped row is removed and never promoted.
	at := base.Add(time.Minute)
	if ok, err := nodes[1].Plan(t.Context(), "count", nil, "series-1", "@every 1s", base, at); err != nil || !ok {
		t.Fatalf("plan: %v %v", ok, err)
	}
	due, err := nodes[1].Due(t.Context(), at, 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due: %v %d", err, len(due))
	}
	if ok, err := nodes[2].Skip(t.Context(), &due[0], "test"); err != nil || !ok {
		t.Fatalf("skip: %v %v", ok, err)
	}
	if ok, err := nodes[0].Promote(t.Context(), &due[0]); err != nil || ok {
		t.Fatalf("promote after skip: %v %v", ok, err)
	}
	if _, err := nodes[0].Get(t.Context(), due[0].ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a skipped row: %v, want ErrNotFound", err)
	}
	// The unfiltered list never shows waiting rows.
	if ok, err := nodes[1].Plan(t.Context(), "count", nil, "series-1", "@every 1s", at, base.Add(time.Hour)); err != nil || !ok {
		t.Fatalf("plan: %v %v", ok, err)
	}
	all, err := nodes[0].List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.Status == StatusScheduled {
			t.Errorf("unfiltered list shows %s", j.ID)
		}
	}
}

// TestPlanMark: a tick whose row was skipped or deleted is not planned
// again, nor is any tick before the latest one planned; Unplan and
// UnplanOthers reset a series so that it can be planned afresh.
func TestPlanMark(t *testing.T) {
	db := openDB(t)
	s := startNode(t, db, Config{}, func(context.Context, *Run) (any, error) { return nil, nil })
	ctx := t.Context()
	base := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	plan := func(series string, from, at time.Time) bool {
		t.Helper()
		ok, err := s.Plan(ctx, "count", nil, series, "@every 1s", from, at)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	tick := func(i int) time.Time { return base.Add(time.Duration(i) * time.Minute) }
	if !plan("a", tick(0), tick(1)) {
		t.Fatal("first tick not planned")
	}
	rows, err := s.List(ctx, StatusScheduled)
	if err != nil || len(rows) != 1 {
		t.Fatalf("waiting rows: %v %d", err, len(rows))
	}
	if err := s.Delete(ctx, rows[0].ID); err != nil {
		t.Fatal(err)
	}
	if plan("a", tick(0), tick(1)) {
		t.Error("a deleted tick was planned again")
	}
	mark, err := s.PlannedThrough(ctx, "a")
	if err != nil || mark == nil || !mark.Through.Equal(tick(1)) || !mark.From.Equal(tick(0)) {
		t.Fatalf("mark of a: %v %+v", err, mark)
	}
	if !plan("a", tick(1), tick(3)) || plan("a", tick(1), tick(2)) {
		t.Error("planning went back before the latest planned tick")
	}
	if !plan("b", tick(0), tick(1)) {
		t.Error("series b is not planned apart from a")
	}
	// A schedule that changed: the waiting tick goes, the series starts afresh.
	if n, err := s.Unplan(ctx, "a", tick(0)); err != nil || n != 1 {
		t.Fatalf("Unplan: %v, %d rows", err, n)
	}
	if mark, err := s.PlannedThrough(ctx, "a"); err != nil || mark != nil {
		t.Fatalf("mark after Unplan: %v %+v", err, mark)
	}
	if !plan("a", tick(0), tick(2)) {
		t.Error("series a not planned again after Unplan")
	}
	// A series not kept (task disabled or gone) loses rows and mark.
	if n, err := s.UnplanOthers(ctx, []string{"a"}); err != nil || n != 1 {
		t.Fatalf("UnplanOthers: %v, %d rows", err, n)
	}
	if mark, err := s.PlannedThrough(ctx, "b"); err != nil || mark != nil {
		t.Fatalf("mark of b after UnplanOthers: %v %+v", err, mark)
	}
	if mark, err := s.PlannedThrough(ctx, "a"); err != nil || mark == nil {
		t.Fatalf("mark of a after UnplanOthers: %v %+v", err, mark)
	}
	if n, err := s.UnplanOthers(ctx, nil); err != nil || n != 1 {
		t.Fatalf("UnplanOthers(nil): %v, %d rows", err, n)
	}
}

// TestActive: Active counts the pending and running jobs of a kind whose
// arguments name a value, whatever created them.
func TestActive(t *testing.T) {
	db := openDB(t)
	release := make(chan struct{})
	started := make(chan struct{}, 4)
	s := startNode(t, db, Config{MaxConcurrency: 1}, func(ctx context.Context, _ *Run) (any, error) {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	ctx := t.Context()
	type args struct {
		TaskID string `json:"task_id"`
	}
	count := func(value string) int {
		t.Helper()
		n, err := s.Active(ctx, "count", "task_id", value)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count("T1"); n != 0 {
		t.Fatalf("Active before any job = %d", n)
	}
	first, err := s.Submit(ctx, "count", args{"T1"})
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := s.Submit(ctx, "count", args{"T1"}); err != nil { // pending: one slot
		t.Fatal(err)
	}
	if _, err := s.Submit(ctx, "count", args{"T2"}); err != nil {
		t.Fatal(err)
	}
	if got := []int{count("T1"), count("T2"), count("T3")}; !cmp.Equal(got, []int{2, 1, 0}) {
		t.Errorf("Active(T1, T2, T3) = %v, want [2 1 0]", got)
	}
	if _, err := s.Active(ctx, "count", "task_id') OR ('1", "T1"); err == nil {
		t.Error("Active accepted an argument name that is not a plain name")
	}
	close(release)
	if _, err := s.Wait(ctx, first); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the jobs of T1 and T2 end", func() bool { return count("T1") == 0 && count("T2") == 0 })
}

// TestPlanFailureLeavesNoMark: when storing a tick's row fails, the
// series' mark does not move either, so the tick is planned again by the
// next attempt instead of being lost. Runs on both engines.
func TestPlanFailureLeavesNoMark(t *testing.T) {
	db := openDB(t)
	s := startNode(t, db, Config{PollInterval: 20 * time.Millisecond}, func(context.Context, *Run) (any, error) { return nil, nil })
	var failOnce atomic.Bool
	failOnce.Store(true)
	injected := errors.New("injected insert failure")
	if err := db.Callback().Create().Before("gorm:create").Register("test:fail_job_insert", func(tx *gorm.DB) {
		if tx.Statement.Table == "jobs" && failOnce.CompareAndSwap(true, false) {
			_ = tx.AddError(injected)
		}
	}); err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC().Add(time.Hour).Truncate(time.Second)
	ctx := context.Background()
	if ok, err := s.Plan(ctx, "count", nil, "series-f", "@every 1s", at.Add(-time.Second), at); err == nil || ok {
		t.Fatalf("Plan with a failing insert = %v, %v; want an error", ok, err)
	}
	if m, err := s.PlannedThrough(ctx, "series-f"); err != nil || m != nil {
		t.Fatalf("mark after a failed plan = %+v, %v; want none", m, err)
	}
	ok, err := s.Plan(ctx, "count", nil, "series-f", "@every 1s", at.Add(-time.Second), at)
	if err != nil || !ok {
		t.Fatalf("second Plan = %v, %v; want the tick stored", ok, err)
	}
	var n int64
	if err := db.Model(&Job{}).Where("series = ? AND status = ?", "series-f", StatusScheduled).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("%d waiting rows for the tick, want 1", n)
	}
}

// TestNewRetryKeepsTheRequest: a retry carries the request id and trace
// context of the attempt it repeats, so its log lines and its execution
// span still name the request that submitted the first attempt.
func TestNewRetryKeepsTheRequest(t *testing.T) {
	rid, tp := "01JREQUEST", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	first := &Job{ID: "01JFIRST", Kind: "count", Attempt: 1, RequestID: &rid, TraceParent: &tp}
	retry := NewRetry(first, time.Now())
	second := NewRetry(retry, time.Now())
	type carried struct {
		RequestID, TraceParent *string
		RetryOf                string
		Attempt                int
	}
	got := []carried{{retry.RequestID, retry.TraceParent, *retry.RetryOf, retry.Attempt}, {second.RequestID, second.TraceParent, *second.RetryOf, second.Attempt}}
	want := []carried{{&rid, &tp, "01JFIRST", 2}, {&rid, &tp, "01JFIRST", 3}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("retries (-want +got):\n%s", diff)
	}
}

// TestPromoteIdleOnce: three nodes promote, all at once, the due rows of
// six series that belong to one task; the check that no execution of the
// task is active and the promotion are one step, so exactly one row is
// promoted. Runs on both engines.
func TestPromoteIdleOnce(t *testing.T) {
	db := openDB(t)
	release := make(chan struct{})
	h := func(ctx context.Context, _ *Run) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	}
	cfg := Config{PollInterval: 20 * time.Millisecond}
	nodes := []*Scheduler{startNode(t, db, cfg, h), startNode(t, db, cfg, h), startNode(t, db, cfg, h)}
	defer close(release)
	ctx := context.Background()
	type args struct {
		TaskID string `json:"task_id"`
	}
	at := time.Now().UTC().Add(-time.Second)
	for i := range 6 {
		series := "series-" + string(rune('a'+i))
		if ok, err := nodes[0].Plan(ctx, "count", args{"T"}, series, "@every 1s", at.Add(-time.Second), at); err != nil || !ok {
			t.Fatalf("Plan %s: %v %v", series, ok, err)
		}
	}
	due, err := nodes[0].Due(ctx, time.Now(), 100)
	if err != nil || len(due) != 6 {
		t.Fatalf("Due: %v, %d rows", err, len(due))
	}
	var promoted atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, n := range nodes {
		for i := range due {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ok, err := n.PromoteIdle(ctx, &due[i], "task_id", "T")
				if err != nil {
					t.Error(err)
				}
				if ok {
					promoted.Add(1)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if got := promoted.Load(); got != 1 {
		t.Fatalf("%d rows promoted, want 1", got)
	}
	// Another task is not held back by T's execution.
	if ok, err := nodes[1].Plan(ctx, "count", args{"U"}, "series-u", "@every 1s", at.Add(-time.Second), at); err != nil || !ok {
		t.Fatalf("Plan series-u: %v %v", ok, err)
	}
	var u Job
	if err := db.Where("series = ?", "series-u").First(&u).Error; err != nil {
		t.Fatal(err)
	}
	if ok, err := nodes[2].PromoteIdle(ctx, &u, "task_id", "U"); err != nil || !ok {
		t.Errorf("PromoteIdle of another task: %v %v", ok, err)
	}
	// A row held back stays scheduled; Defer moves it.
	var held Job
	if err := db.Where("status = ? AND series LIKE ?", StatusScheduled, "series-%").First(&held).Error; err != nil {
		t.Fatal(err)
	}
	later := time.Now().UTC().Add(time.Hour).Truncate(time.Millisecond)
	if ok, err := nodes[0].Defer(ctx, &held, later); err != nil || !ok {
		t.Fatalf("Defer: %v %v", ok, err)
	}
	again, err := nodes[0].Get(ctx, held.ID)
	if err != nil || !again.RunAt.Equal(later) {
		t.Errorf("after Defer: %v %+v, want run_at %s", err, again, later)
	}
}

// TestUpSince: the time since which nodes have run without a gap starts
// at the earliest live node's start, reaches back through dead nodes
// that overlap it, and not across a gap. Runs on both engines.
func TestUpSince(t *testing.T) {
	db := openDB(t)
	s := startNode(t, db, Config{}, func(context.Context, *Run) (any, error) { return nil, nil })
	ctx := t.Context()
	now := time.Now().UTC().Truncate(time.Millisecond)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	up := func() time.Time {
		t.Helper()
		v, err := s.UpSince(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	set := func(id string, started, beat time.Duration) {
		t.Helper()
		if err := db.Exec(`UPDATE chapkit_nodes SET started_ms = ?, heartbeat_ms = ? WHERE id = ?`, ms(started), ms(beat), id).Error; err != nil {
			t.Fatal(err)
		}
	}
	dead := func(id string, started, beat time.Duration) {
		t.Helper()
		if err := db.Exec(`INSERT INTO chapkit_nodes (id, hostname, pid, started_ms, heartbeat_ms, rescue_after_ms) VALUES (?, 'elsewhere', 1, ?, ?, 15000)`,
			id, ms(started), ms(beat)).Error; err != nil {
			t.Fatal(err)
		}
	}
	set(s.NodeID(), -10*time.Second, 0)
	if got := up(); !got.Equal(now.Add(-10 * time.Second)) {
		t.Errorf("one live node: UpSince = %s, want its start %s", got, now.Add(-10*time.Second))
	}
	// A node that died before the live one started: a gap.
	dead("gone", -time.Hour, -3*time.Minute)
	if got := up(); !got.Equal(now.Add(-10 * time.Second)) {
		t.Errorf("after a gap: UpSince = %s, want %s", got, now.Add(-10*time.Second))
	}
	// Nodes that overlap in a chain: the span reaches back to the first.
	dead("b", -50*time.Second, -5*time.Second)
	dead("a", -2*time.Minute, -40*time.Second)
	if got := up(); !got.Equal(now.Add(-2 * time.Minute)) {
		t.Errorf("chain of nodes: UpSince = %s, want %s", got, now.Add(-2*time.Minute))
	}
}
