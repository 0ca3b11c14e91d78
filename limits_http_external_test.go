package chapkit_test

import (
	"net/http"
	"testing"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// TestHugePageAndSize: page and size at the top of int64 give an empty
// page with the right count, not an overflow; past int64 they are a 422.
func TestHugePageAndSize(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	shellTask(t, h, "echo one")
	shellTask(t, h, "echo two")
	const top = "9223372036854775807"
	for _, prefix := range []string{"/api/v1/tasks", "/api/v1/artifacts"} {
		rec := testkit.Request(t, h, http.MethodGet, prefix+"?page="+top+"&size="+top, "", "")
		want := map[string]any{"items": []any{}, "page": float64(9223372036854775807), "size": float64(9223372036854775807)}
		if prefix == "/api/v1/tasks" {
			want["total"], want["pages"] = float64(2), float64(1)
		} else {
			want["total"], want["pages"] = float64(0), float64(0)
		}
		expect(t, rec, http.StatusOK, ctJSON, want)
		rec = testkit.Request(t, h, http.MethodGet, prefix+"?page=1&size="+top, "", "")
		if got := object(t, rec.Body.Bytes()); rec.Code != http.StatusOK || got["pages"] != want["pages"] || got["total"] != want["total"] {
			t.Errorf("%s first page of a huge size = %d %s", prefix, rec.Code, rec.Body.String())
		}
		rec = testkit.Request(t, h, http.MethodGet, prefix+"?page=1&size=99999999999999999999", "", "")
		if rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("%s size past int64 = %d %s, want 422", prefix, rec.Code, rec.Body.String())
		}
	}
}

// TestHealthStreamPollIntervalIsClamped: any number is accepted; the
// clamping itself is TestPollInterval in internal/httpapi.
func TestHealthStreamPollIntervalIsClamped(t *testing.T) {
	t.Parallel()
	srv := serve(t, newApp(t).Handler())
	for _, v := range []string{"NaN", "Inf", "-Inf", "1e308", "-5", "0"} {
		r, cancel := testkit.OpenSSE(t, srv.Client(), srv.URL+"/health/$stream?poll_interval="+v)
		first, ok := r.Next()
		cancel()
		if !ok || first == "" {
			t.Errorf("poll_interval=%s: no first event", v)
		}
	}
}
