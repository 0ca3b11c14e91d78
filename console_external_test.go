package chapkit_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/registry"
)

// TestConsoleServesPageAssetsAndConfig checks the console's three routes:
// the page points at its assets and config under the prefix, the assets
// are the embedded bundle, and the config lists what the service mounts.
func TestConsoleServesPageAssetsAndConfig(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithConsole().WithMonitoring() })
	h := app.Handler()

	rec := testkit.Request(t, h, http.MethodGet, "/console", "", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /console: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	page := rec.Body.String()
	for _, want := range []string{`src="/console/assets/app.js"`, `href="/console/assets/app.css"`, `data-config="/console/config.json"`, "<title>Test – console</title>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("page loads something from another origin")
	}
	for name, ct := range map[string]string{"app.js": "text/javascript", "app.css": "text/css"} {
		rec := testkit.Request(t, h, http.MethodGet, "/console/assets/"+name, "", "")
		if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), ct) || rec.Body.Len() < 1000 {
			t.Errorf("GET %s: %d %s, %d bytes", name, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
		if strings.Contains(rec.Body.String(), "https://") && name == "app.css" {
			t.Errorf("%s refers to another origin", name)
		}
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/console/assets/nope.js", "", ""); rec.Code != http.StatusNotFound {
		t.Errorf("unknown asset: %d, want 404", rec.Code)
	}

	rec = testkit.Request(t, h, http.MethodGet, "/console/config.json", "", "")
	all := map[string]any{"create": true, "read": true, "update": true, "delete": true}
	want := map[string]any{
		"title": "Test", "version": "1.0.0",
		"api": map[string]any{"info": "/api/v1/info", "health": "/health", "tasks": "/api/v1/tasks", "jobs": "/api/v1/jobs",
			"artifacts": "/api/v1/artifacts", "metrics": "/metrics", "nodes": "/api/v1/system/nodes"},
		"permissions": map[string]any{"tasks": all, "artifacts": all},
		"auth":        nil,
	}
	if diff := cmp.Diff(want, object(t, rec.Body.Bytes())); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

// TestConsoleReadOnlyAndAuth: a read-only task resource is reported as
// such (the console then shows no edit controls), and with API keys on the
// console's own paths load without a key while the API still needs one.
func TestConsoleReadOnlyAndAuth(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTasks(registry.New(), chapkit.TasksConfig{Permissions: &chapkit.ReadOnly}).
			WithConsole(chapkit.ConsoleConfig{Prefix: "/ops/console/"}).
			WithAuth(chapkit.AuthConfig{APIKeys: []string{"sk_console_key"}})
	})
	h := app.Handler()
	for _, p := range []string{"/ops/console", "/ops/console/assets/app.js", "/ops/console/assets/app.css", "/ops/console/config.json"} {
		if rec := testkit.Request(t, h, http.MethodGet, p, "", ""); rec.Code != http.StatusOK {
			t.Errorf("GET %s without a key: %d, want 200", p, rec.Code)
		}
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/ops/console/assets/nope.js", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("other paths under the prefix without a key: %d, want 401", rec.Code)
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/jobs", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("API without a key: %d, want 401", rec.Code)
	}
	cfg := object(t, testkit.Request(t, h, http.MethodGet, "/ops/console/config.json", "", "").Body.Bytes())
	got := map[string]any{"tasks": cfg["permissions"].(map[string]any)["tasks"], "auth": cfg["auth"]}
	want := map[string]any{
		"tasks": map[string]any{"create": false, "read": true, "update": false, "delete": false},
		"auth":  map[string]any{"header": "X-API-Key"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
}

func TestConsolePrefixMustBeAPath(t *testing.T) {
	_, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "X"}).WithConsole(chapkit.ConsoleConfig{Prefix: "console"}).Build()
	if err == nil || !strings.Contains(err.Error(), "WithConsole: Prefix must start with a slash") {
		t.Errorf("Build error = %v, want the WithConsole prefix error", err)
	}
	_, err = chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "X"}).WithConsole(chapkit.ConsoleConfig{Prefix: "/"}).Build()
	if err == nil {
		t.Error("prefix / accepted, want an error")
	}
}
