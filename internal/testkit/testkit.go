// Package testkit holds the helpers every test suite of the module needs:
// polling with a deadline, HTTP requests against a handler, waiting for a
// job through the API and reading a Server-Sent Events stream. It imports
// no package of the module, so the tests of any package, internal ones
// included, can use it without an import cycle; the helpers that build a
// whole app live in the subpackage apptest.
//
// It is imported only from _test.go files.
package testkit

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Deadline is how long a test waits for a job, a process or a stream by
// default: generous, so a loaded machine does not fail a correct test.
const Deadline = 30 * time.Second

// pollInterval is how often Eventually checks its condition.
const pollInterval = 10 * time.Millisecond

// Eventually polls cond every 10 ms until it holds, and fails the test if
// it still does not hold after within. what names the awaited condition in
// the failure message.
func Eventually(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	EventuallyEvery(tb, within, pollInterval, what, cond)
}

// EventuallyEvery is [Eventually] with its own polling interval, for
// conditions that are expensive to check.
func EventuallyEvery(tb testing.TB, within, every time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(within)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", within, what)
		}
		<-tick.C
	}
}

// Request sends one request to h and returns the recorded response. A
// non-empty contentType sets Content-Type; extra are header name and value
// pairs.
func Request(tb testing.TB, h http.Handler, method, target, body, contentType string, extra ...string) *httptest.ResponseRecorder {
	tb.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// Terminal reports whether a job status is final.
func Terminal(status any) bool {
	switch status {
	case "completed", "failed", "canceled":
		return true
	}
	return false
}

// WaitJob polls GET <jobsPrefix>/<id> on h until the job is terminal and
// returns its record. A status other than 200 fails the test.
func WaitJob(tb testing.TB, h http.Handler, jobsPrefix, id string) map[string]any {
	tb.Helper()
	var rec map[string]any
	Eventually(tb, Deadline, "job "+id+" to finish", func() bool {
		resp := Request(tb, h, http.MethodGet, jobsPrefix+"/"+id, "", "")
		if resp.Code != http.StatusOK {
			tb.Fatalf("GET job %s: status %d, body %s", id, resp.Code, resp.Body.String())
		}
		rec = nil
		if err := json.Unmarshal(resp.Body.Bytes(), &rec); err != nil {
			tb.Fatalf("GET job %s: %v in %s", id, err, resp.Body.String())
		}
		return Terminal(rec["status"])
	})
	return rec
}

// SSE reads a Server-Sent Events response one data event at a time.
type SSE struct {
	tb   testing.TB
	Resp *http.Response
	sc   *bufio.Scanner
}

// OpenSSE starts a GET on url with client and returns the stream; cancel
// ends the request early. The request ends by itself after [Deadline], and
// the body is closed when the test ends.
func OpenSSE(tb testing.TB, client *http.Client, url string) (*SSE, context.CancelFunc) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), Deadline)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		tb.Fatalf("GET %s: %v", url, err)
	}
	tb.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	return &SSE{tb: tb, Resp: resp, sc: sc}, cancel
}

// Next returns the payload of the next data event; ok is false at the end
// of the stream. Blank lines and comment lines are skipped; any other line
// fails the test.
func (s *SSE) Next() (payload string, ok bool) {
	s.tb.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, ":"):
			continue
		case strings.HasPrefix(line, "data: "):
			return strings.TrimPrefix(line, "data: "), true
		default:
			s.tb.Errorf("unexpected SSE line %q", line)
		}
	}
	return "", false
}

// All reads every remaining event until the server ends the stream.
func (s *SSE) All() []string {
	s.tb.Helper()
	var out []string
	for {
		p, ok := s.Next()
		if !ok {
			if err := s.sc.Err(); err != nil {
				s.tb.Fatalf("read SSE stream: %v", err)
			}
			return out
		}
		out = append(out, p)
	}
}

// NextEvent returns the type and payload of the next event, for streams
// whose events are named (`event: <name>` before the data line); name is
// "" for an unnamed event. ok is false at the end of the stream.
func (s *SSE) NextEvent() (name, payload string, ok bool) {
	s.tb.Helper()
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "" || strings.HasPrefix(line, ":"):
			continue
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			return name, strings.TrimPrefix(line, "data: "), true
		default:
			s.tb.Errorf("unexpected SSE line %q", line)
		}
	}
	return "", "", false
}
