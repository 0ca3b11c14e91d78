package chapkit_test

import (
	"context"
	"errors"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

func check(name string, state chapkit.HealthState, msg string, err error) chapkit.HealthCheck {
	return chapkit.HealthCheck{Name: name, Check: func(context.Context) (chapkit.HealthState, string, error) {
		return state, msg, err
	}}
}

func TestHealth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    chapkit.HealthConfig
		status int
		body   string
	}{
		{"default database check", chapkit.HealthConfig{}, http.StatusOK,
			`{"status":"healthy","checks":{"database":{"state":"healthy"}}}`},
		{"no checks", chapkit.HealthConfig{NoDatabaseCheck: true}, http.StatusOK, `{"status":"healthy"}`},
		{"only healthy", chapkit.HealthConfig{NoDatabaseCheck: true, Checks: []chapkit.HealthCheck{
			check("ok", chapkit.Healthy, "", nil)}}, http.StatusOK, `{"status":"healthy","checks":{"ok":{"state":"healthy"}}}`},
		{"degraded is 200", chapkit.HealthConfig{NoDatabaseCheck: true, Checks: []chapkit.HealthCheck{
			check("ok", chapkit.Healthy, "", nil), check("other", chapkit.Degraded, "Partial outage", nil)}}, http.StatusOK,
			`{"status":"degraded","checks":{"ok":{"state":"healthy"},"other":{"state":"degraded","message":"Partial outage"}}}`},
		{"unhealthy is 503, checks keep their order", chapkit.HealthConfig{NoDatabaseCheck: true, Checks: []chapkit.HealthCheck{
			check("zeta", chapkit.Healthy, "", nil),
			check("mid", chapkit.Degraded, "Partial outage", nil),
			check("alpha", chapkit.Unhealthy, "Service down", nil),
			check("broken", chapkit.Healthy, "", errors.New("connection refused")),
		}}, http.StatusServiceUnavailable,
			`{"status":"unhealthy","checks":{"zeta":{"state":"healthy"},"mid":{"state":"degraded","message":"Partial outage"},` +
				`"alpha":{"state":"unhealthy","message":"Service down"},"broken":{"state":"unhealthy","message":"Check failed: connection refused"}}}`},
		{"user checks come before the database check", chapkit.HealthConfig{Checks: []chapkit.HealthCheck{
			check("custom", chapkit.Healthy, "", nil)}}, http.StatusOK,
			`{"status":"healthy","checks":{"custom":{"state":"healthy"},"database":{"state":"healthy"}}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithHealthConfig(tc.cfg) })
			rec := testkit.Request(t, app.Handler(), http.MethodGet, "/health", "", "")
			if rec.Code != tc.status {
				t.Errorf("status = %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != ctJSON {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := strings.TrimSpace(rec.Body.String()); got != tc.body {
				t.Errorf("body =\n%s\nwant\n%s", got, tc.body)
			}
		})
	}

	t.Run("custom check is called per request", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
			return b.WithHealthConfig(chapkit.HealthConfig{NoDatabaseCheck: true, Checks: []chapkit.HealthCheck{{Name: "custom",
				Check: func(context.Context) (chapkit.HealthState, string, error) {
					calls.Add(1)
					return chapkit.Healthy, "", nil
				}}}})
		})
		for range 2 {
			expect(t, testkit.Request(t, app.Handler(), http.MethodGet, "/health", "", ""), http.StatusOK, ctJSON,
				map[string]any{"status": "healthy", "checks": map[string]any{"custom": map[string]any{"state": "healthy"}}})
		}
		if n := calls.Load(); n != 2 {
			t.Errorf("check called %d times, want 2", n)
		}
	})

	t.Run("trailing slash redirects", func(t *testing.T) {
		t.Parallel()
		rec := testkit.Request(t, newApp(t).Handler(), http.MethodGet, "/health/", "", "")
		if rec.Code != http.StatusTemporaryRedirect || rec.Header().Get("Location") != "/health" {
			t.Errorf("GET /health/: %d Location %q", rec.Code, rec.Header().Get("Location"))
		}
	})
}

func TestInfo(t *testing.T) {
	t.Parallel()
	app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{
		DisplayName: "Svc", Summary: "Short text",
		Contact: map[string]string{"email": "ops@example.com"},
		Extra:   map[string]any{"author": "ops", "tags": []string{"a", "b"}},
	}).WithDatabase(apptest.DBTarget(t)))
	h := app.Handler()
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", ""), http.StatusOK, ctJSON, map[string]any{
		"id": "svc", "display_name": "Svc", "version": "1.0.0", "summary": "Short text", "description": "Short text",
		"contact": map[string]any{"email": "ops@example.com"},
		"author":  "ops", "tags": []any{"a", "b"},
	})
	// Nothing else is mounted without options.
	for _, p := range []string{"/health", "/api/v1/system", "/api/v1/tasks", "/api/v1/jobs", "/api/v1/artifacts"} {
		expect(t, testkit.Request(t, h, http.MethodGet, p, "", ""), http.StatusNotFound, ctJSON, detail("Not Found"))
	}

	t.Run("explicit version and description", func(t *testing.T) {
		app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "X", Version: "2.3.4", Summary: "s", Description: "d"}))
		expect(t, testkit.Request(t, app.Handler(), http.MethodGet, "/api/v1/info", "", ""), http.StatusOK, ctJSON, map[string]any{
			"id": "x", "display_name": "X", "version": "2.3.4", "summary": "s", "description": "d"})
	})

	t.Run("only id, display_name and version when nothing else is set", func(t *testing.T) {
		app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Task Execution Service",
			Extra: map[string]any{"summary": nil, "id": "ignored"}}))
		expect(t, testkit.Request(t, app.Handler(), http.MethodGet, "/api/v1/info", "", ""), http.StatusOK, ctJSON, map[string]any{
			"id": "task-execution-service", "display_name": "Task Execution Service", "version": "1.0.0"})
	})

	t.Run("explicit id and license", func(t *testing.T) {
		app := apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{ID: "my-svc", DisplayName: "Svc",
			LicenseInfo: map[string]string{"name": "MIT"}}))
		expect(t, testkit.Request(t, app.Handler(), http.MethodGet, "/api/v1/info", "", ""), http.StatusOK, ctJSON, map[string]any{
			"id": "my-svc", "display_name": "Svc", "version": "1.0.0", "license_info": map[string]any{"name": "MIT"}})
	})
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"Task Execution Service": "task-execution-service",
		"  ML: v2 (beta) ":       "ml-v2-beta",
		"chap_core--Model":       "chap-core-model",
		"Über Modell 3":          "ber-modell-3",
		"already-a-slug":         "already-a-slug",
		"":                       "service",
		"!!! ???":                "service",
		"ÅÄÖ":                    "service",
	} {
		if got := chapkit.Slug(name); got != want {
			t.Errorf("Slug(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestSystem(t *testing.T) {
	t.Parallel()
	h := newApp(t).Handler()
	rec := testkit.Request(t, h, http.MethodGet, "/api/v1/system", "", "")
	expect(t, rec, http.StatusOK, ctJSON, nil)
	got := object(t, rec.Body.Bytes())
	if diff := cmp.Diff([]string{"current_time", "go_version", "hostname", "platform", "timezone"}, sortedKeys(got)); diff != "" {
		t.Errorf("keys mismatch (-want +got):\n%s", diff)
	}
	if got["go_version"] != strings.TrimPrefix(runtime.Version(), "go") {
		t.Errorf("go_version = %v, want %s", got["go_version"], strings.TrimPrefix(runtime.Version(), "go"))
	}
	now, _ := got["current_time"].(string)
	ts, err := time.Parse(time.RFC3339Nano, now)
	if err != nil || !strings.HasSuffix(now, "Z") || time.Since(ts).Abs() > time.Minute {
		t.Errorf("current_time = %q, want now as RFC 3339 UTC with Z", now)
	}
	for _, k := range []string{"platform", "hostname", "timezone"} {
		if s, _ := got[k].(string); s == "" && k != "hostname" {
			t.Errorf("%s is empty", k)
		}
	}
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/system/apps", "", ""), http.StatusOK, ctJSON, []any{})
	expect(t, testkit.Request(t, h, http.MethodGet, "/api/v1/system/apps/$schema", "", ""), http.StatusOK, ctJSON, nil)
}

func sortedKeys(m map[string]any) []string {
	ks := keysOf(m)
	sort.Strings(ks)
	return ks
}
