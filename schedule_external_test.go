package chapkit_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit/internal/testkit"
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
