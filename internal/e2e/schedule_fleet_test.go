package e2e

import (
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit/internal/pgtest"
)

// TestScheduleAcrossNodes: a task scheduled "@every 1s" on three nodes
// sharing one PostgreSQL database runs once per tick for the time it is
// enabled (one tick more or less at the edges), no tick runs twice, and
// the ticks go on when the leader, which fires them, is SIGKILLed in the
// middle. The test observes the schedule for a fixed window of wall-clock
// time, since what it measures is ticks per second of real time.
func TestScheduleAcrossNodes(t *testing.T) {
	if ok, why := pgtest.Available(); !ok {
		t.Skipf("PostgreSQL tests skipped: %s", why)
	}
	f := newFleet(t)
	var task struct {
		ID string `json:"id"`
	}
	// Overlap "allow": the ticks that fell due while leadership moved
	// run late and together, and with "skip" all but the first of them
	// would be skipped by design. This test counts ticks, not overlap.
	f.nodes[0].decode("POST", "/api/v1/tasks", map[string]any{"command": "echo tick", "schedule": "@every 1s", "schedule_overlap": "allow"}, http.StatusCreated, &task)
	enabled := time.Now()

	observe := func(d time.Duration) {
		timer := time.NewTimer(d)
		defer timer.Stop()
		<-timer.C
	}
	observe(5 * time.Second)
	leader := -1
	for _, n := range f.liveNodes(0) {
		if n.Leader {
			leader = f.index(&n.ID)
		}
	}
	if leader < 0 {
		t.Fatalf("no leader among %+v", f.liveNodes(0))
	}
	if err := f.nodes[leader].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-f.nodes[leader].done
	survivor := (leader + 1) % 3
	observe(time.Until(enabled.Add(10 * time.Second)))
	f.nodes[survivor].decode("PATCH", "/api/v1/tasks/"+task.ID, map[string]any{"enabled": false}, http.StatusOK, nil)
	window := time.Since(enabled)

	var jobs []struct {
		fleetJob
		Trigger *string `json:"trigger"`
	}
	f.nodes[survivor].decode("GET", "/api/v1/jobs", nil, http.StatusOK, &jobs)
	ran := 0
	for _, j := range jobs {
		if j.Trigger != nil && *j.Trigger == "schedule" {
			ran++
		}
	}
	want := int(window / time.Second)
	t.Logf("MEASURE schedule_every_1s window=%s executions=%d leader_killed=%d", window.Round(time.Millisecond), ran, leader)
	if ran < want-1 || ran > want+1 {
		t.Errorf("%d scheduled executions in %s with the leader killed at 5 s, want %d ± 1", ran, window.Round(time.Millisecond), want)
	}
}
