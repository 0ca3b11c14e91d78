package testkit

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEventuallyWaitsForTheCondition(t *testing.T) {
	n := 0
	Eventually(t, time.Second, "the third check", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("condition checked %d times, want 3", n)
	}
}

func TestRequestSendsBodyAndHeaders(t *testing.T) {
	var got []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = []string{r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("X-Extra")}
		w.WriteHeader(http.StatusTeapot)
	})
	rec := Request(t, h, http.MethodPost, "/p", "{}", "application/json", "X-Extra", "1")
	if diff := cmp.Diff([]string{"POST", "/p", "application/json", "1"}, got); diff != "" || rec.Code != http.StatusTeapot {
		t.Errorf("code %d, request (-want +got):\n%s", rec.Code, diff)
	}
}

func TestWaitJobPollsUntilTerminal(t *testing.T) {
	calls := 0
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		status := "running"
		if calls == 2 {
			status = "completed"
		}
		fmt.Fprintf(w, `{"id":"j","status":%q}`, status)
	})
	rec := WaitJob(t, h, "/api/v1/jobs", "j")
	if rec["status"] != "completed" || calls != 2 {
		t.Errorf("record %v after %d calls", rec, calls)
	}
}

func TestSSEReadsDataEvents(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: 1\n\n: keep-alive\n\ndata: 2\n\n")
	}))
	defer srv.Close()
	s, cancel := OpenSSE(t, srv.Client(), srv.URL)
	defer cancel()
	if diff := cmp.Diff([]string{"1", "2"}, s.All()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
