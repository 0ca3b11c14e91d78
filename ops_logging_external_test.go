package chapkit_test

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// withLogging enables request logging into buf and adds GET /rid, which
// answers the request id the handler sees, and GET /boom, which fails.
func withLogging(buf *syncBuffer) func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
	return func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		withLogBuffer(buf)(b)
		return b.WithLogging().WithRoutes(func(a *chapkit.App) {
			a.Echo().GET("/rid", func(c echo.Context) error {
				return c.String(http.StatusOK, chapkit.RequestID(c.Request().Context()))
			})
			a.Echo().GET("/boom", func(c echo.Context) error { return errors.New("boom") })
		})
	}
}

// TestOpsRequestID checks the X-Request-ID header (docs/http-api.md).
func TestOpsRequestID(t *testing.T) {
	var buf syncBuffer
	h := newApp(t, withLogging(&buf)).Handler()

	seen := map[string]bool{}
	for range 5 {
		rec := testkit.Request(t, h, http.MethodGet, "/rid", "", "")
		id := rec.Header().Get("X-Request-ID")
		if len(id) != 26 {
			t.Fatalf("X-Request-ID = %q, want 26 characters", id)
		}
		if got := rec.Body.String(); got != id {
			t.Errorf("handler saw request id %q, header says %q", got, id)
		}
		if seen[id] {
			t.Errorf("request id %s repeated", id)
		}
		seen[id] = true
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/tasks/" + unknownID, 404},
		{http.MethodGet, "/no/such/path", 404},
		{http.MethodPost, "/api/v1/tasks", 422},
		{http.MethodGet, "/boom", 500},
	} {
		rec := testkit.Request(t, h, tc.method, tc.path, "", "")
		if rec.Code != tc.status || len(rec.Header().Get("X-Request-ID")) != 26 {
			t.Errorf("%s %s: status %d, X-Request-ID %q; want %d and an id", tc.method, tc.path, rec.Code, rec.Header().Get("X-Request-ID"), tc.status)
		}
	}
	t.Run("valid incoming id is kept", func(t *testing.T) {
		const mine = "01JCSEED0000000000000TASK1"
		rec := testkit.Request(t, h, http.MethodGet, "/rid", "", "", "X-Request-ID", mine)
		if got := rec.Header().Get("X-Request-ID"); got != mine || rec.Body.String() != mine {
			t.Errorf("echoed id = %q (handler %q), want %q", got, rec.Body.String(), mine)
		}
	})
	t.Run("invalid incoming id is replaced", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/rid", "", "", "X-Request-ID", "not-a-ulid\nforged")
		if got := rec.Header().Get("X-Request-ID"); len(got) != 26 || strings.Contains(got, "forged") {
			t.Errorf("X-Request-ID = %q, want a fresh ULID", got)
		}
	})
	t.Run("no id on a 401", func(t *testing.T) {
		b := builderFor(t)
		withLogging(&syncBuffer{})(b)
		b.WithAuth(chapkit.AuthConfig{APIKeys: []string{testKey}})
		h := apptest.Start(t, b).Handler()
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "")
		if rec.Code != http.StatusUnauthorized || rec.Header().Get("X-Request-ID") != "" {
			t.Errorf("unauthenticated: status %d, X-Request-ID %q; want 401 and none", rec.Code, rec.Header().Get("X-Request-ID"))
		}
		if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", testKey); len(rec.Header().Get("X-Request-ID")) != 26 {
			t.Errorf("authenticated request has no X-Request-ID")
		}
	})
	t.Run("off by default", func(t *testing.T) {
		rec := testkit.Request(t, newApp(t).Handler(), http.MethodGet, "/api/v1/info", "", "")
		if v := rec.Header().Get("X-Request-ID"); v != "" {
			t.Errorf("X-Request-ID = %q without WithLogging", v)
		}
	})
}

// TestOpsRequestLogs checks the request log events and that the id
// reaches the $execute log line.
func TestOpsRequestLogs(t *testing.T) {
	var buf syncBuffer
	h := newApp(t, withLogging(&buf)).Handler()
	rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "")
	id := rec.Header().Get("X-Request-ID")
	logs := buf.String()
	for _, want := range []string{
		"msg=http.request.start method=GET path=/api/v1/info",
		"msg=http.request.complete method=GET path=/api/v1/info status=200 duration_ms=",
		"request_id=" + id,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}

	rec = testkit.Request(t, h, http.MethodGet, "/boom", "", "")
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != "Internal Server Error" {
		t.Errorf("failing handler: %d %q, want 500 Internal Server Error", rec.Code, rec.Body.String())
	}
	if !strings.Contains(buf.String(), "msg=http.request.error method=GET path=/boom status=500 error=boom") {
		t.Errorf("no http.request.error line for the 500:\n%s", buf.String())
	}

	taskID := shellTask(t, h, "true")
	rec = testkit.Request(t, h, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", "", "")
	jobID := object(t, rec.Body.Bytes())["job_id"].(string)
	waitJob(t, h, jobID)
	var line string
	for l := range strings.Lines(buf.String()) {
		if strings.Contains(l, "job_id="+jobID) && strings.Contains(l, "task submitted") {
			line = l
		}
	}
	if !strings.Contains(line, "request_id="+rec.Header().Get("X-Request-ID")) {
		t.Errorf("the $execute log line %q lacks request_id=%s", line, rec.Header().Get("X-Request-ID"))
	}
}

// TestOpsLoggerFromEnv checks LOG_FORMAT and LOG_LEVEL.
func TestOpsLoggerFromEnv(t *testing.T) {
	tests := []struct {
		format, level string
		json          bool
		min           slog.Level
	}{
		{"", "", false, slog.LevelInfo},
		{"console", "DEBUG", false, slog.LevelDebug},
		{"json", "WARNING", true, slog.LevelWarn},
		{"JSON", "error", true, slog.LevelError},
		{"json", "CRITICAL", true, slog.LevelError},
		{"other", "nonsense", false, slog.LevelInfo},
	}
	for _, tc := range tests {
		t.Run(tc.format+"/"+tc.level, func(t *testing.T) {
			t.Setenv("LOG_FORMAT", tc.format)
			t.Setenv("LOG_LEVEL", tc.level)
			l := chapkit.LoggerFromEnv()
			_, isJSON := l.Handler().(*slog.JSONHandler)
			if isJSON != tc.json {
				t.Errorf("JSON handler = %v, want %v", isJSON, tc.json)
			}
			if !l.Enabled(t.Context(), tc.min) || (tc.min > slog.LevelDebug && l.Enabled(t.Context(), tc.min-4)) {
				t.Errorf("minimum level is not %v", tc.min)
			}
		})
	}
}
