package chapkit_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

const (
	testKey      = "sk_test_0123456789abcdef"
	otherTestKey = "sk_prod_fedcba9876543210"
)

// withAuth enables auth with cfg and adds GET /whoami, which answers the
// key prefix the request carries.
func withAuth(cfg chapkit.AuthConfig) func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
	return func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithAuth(cfg).WithRoutes(func(a *chapkit.App) {
			a.Echo().GET("/whoami", func(c echo.Context) error {
				return c.String(http.StatusOK, chapkit.APIKeyPrefix(c.Request().Context()))
			})
		})
	}
}

// unauthorized is the 401 body (docs/http-api.md, authentication).
func unauthorized(detail, instance string) map[string]any {
	return map[string]any{"type": "urn:chapkit:error:unauthorized", "title": "Unauthorized", "status": float64(401),
		"detail": detail, "instance": instance}
}

func writeFile(t testing.TB, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestOpsAuthRequests checks every request rule of API-key authentication
// (docs/http-api.md).
func TestOpsAuthRequests(t *testing.T) {
	app := newApp(t, withAuth(chapkit.AuthConfig{APIKeys: []string{testKey, otherTestKey}}),
		func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder { return b.WithMonitoring().WithDocs() })
	h := app.Handler()

	t.Run("valid keys", func(t *testing.T) {
		for _, key := range []string{testKey, otherTestKey} {
			rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", "", "X-API-Key", key)
			if rec.Code != http.StatusOK {
				t.Errorf("key %s: status %d, want 200", key[:7], rec.Code)
			}
		}
		// Header names are case-insensitive.
		if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks", "", "", "x-api-key", testKey); rec.Code != http.StatusOK {
			t.Errorf("lower-case header: status %d, want 200", rec.Code)
		}
	})
	t.Run("key prefix in the request context", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/whoami", "", "", "X-API-Key", testKey)
		if rec.Code != http.StatusOK || rec.Body.String() != "sk_test" {
			t.Errorf("whoami = %d %q, want 200 \"sk_test\"", rec.Code, rec.Body.String())
		}
	})
	t.Run("missing or empty header", func(t *testing.T) {
		for _, extra := range [][]string{nil, {"X-API-Key", ""}} {
			rec := testkit.Request(t, h, http.MethodGet, "/api/v1/tasks?page=1&size=2", "", "", extra...)
			expect(t, rec, http.StatusUnauthorized, ctProblem, unauthorized("Missing authentication header: X-API-Key", "/api/v1/tasks"))
			if v := rec.Header().Get("WWW-Authenticate"); v != "" {
				t.Errorf("WWW-Authenticate = %q, want none", v)
			}
		}
	})
	t.Run("invalid key", func(t *testing.T) {
		for _, key := range []string{"wrong", testKey + "x", strings.ToUpper(testKey), testKey[:len(testKey)-1]} {
			rec := testkit.Request(t, h, http.MethodPost, "/api/v1/tasks", `{"command":"true"}`, ctJSON, "X-API-Key", key)
			expect(t, rec, http.StatusUnauthorized, ctProblem, unauthorized("Invalid API key", "/api/v1/tasks"))
		}
	})
	t.Run("before routing", func(t *testing.T) {
		rec := testkit.Request(t, h, http.MethodGet, "/no/such/route", "", "")
		expect(t, rec, http.StatusUnauthorized, ctProblem, unauthorized("Missing authentication header: X-API-Key", "/no/such/route"))
		rec = testkit.Request(t, h, http.MethodGet, "/no/such/route", "", "", "X-API-Key", testKey)
		if rec.Code != http.StatusNotFound {
			t.Errorf("unknown route with a key: status %d, want 404", rec.Code)
		}
	})
	t.Run("unauthenticated paths", func(t *testing.T) {
		open := map[string]int{"/health": 200, "/docs": 200, "/openapi.json": 200, "/": 404}
		for p, want := range open {
			if rec := testkit.Request(t, h, http.MethodGet, p, "", ""); rec.Code != want {
				t.Errorf("GET %s without a key: status %d, want %d", p, rec.Code, want)
			}
		}
		for _, p := range []string{"/health/$stream", "/metrics", "/api/v1/info", "/health/", "/docsx", "/api/v1/jobs"} {
			if rec := testkit.Request(t, h, http.MethodGet, p, "", ""); rec.Code != http.StatusUnauthorized {
				t.Errorf("GET %s without a key: status %d, want 401", p, rec.Code)
			}
		}
	})
}

// TestOpsAuthConfig checks the header name and exempt-path options.
func TestOpsAuthConfig(t *testing.T) {
	t.Run("custom header", func(t *testing.T) {
		h := newApp(t, withAuth(chapkit.AuthConfig{APIKeys: []string{testKey}, HeaderName: "X-Custom-Key"})).Handler()
		if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-Custom-Key", testKey); rec.Code != http.StatusOK {
			t.Errorf("custom header: status %d, want 200", rec.Code)
		}
		rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", testKey)
		expect(t, rec, http.StatusUnauthorized, ctProblem, unauthorized("Missing authentication header: X-Custom-Key", "/api/v1/info"))
	})
	t.Run("exempt list replaces the defaults", func(t *testing.T) {
		h := newApp(t, withAuth(chapkit.AuthConfig{APIKeys: []string{testKey}, UnauthenticatedPaths: []string{"/api/v1/info"}})).Handler()
		if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", ""); rec.Code != http.StatusOK {
			t.Errorf("exempt /api/v1/info: status %d, want 200", rec.Code)
		}
		if rec := testkit.Request(t, h, http.MethodGet, "/health", "", ""); rec.Code != http.StatusUnauthorized {
			t.Errorf("/health no longer exempt: status %d, want 401", rec.Code)
		}
	})
	t.Run("short key prefix", func(t *testing.T) {
		h := newApp(t, withAuth(chapkit.AuthConfig{APIKeys: []string{"abc"}})).Handler()
		if rec := testkit.Request(t, h, http.MethodGet, "/whoami", "", "", "X-API-Key", "abc"); rec.Body.String() != "***" {
			t.Errorf("prefix of a short key = %q, want ***", rec.Body.String())
		}
	})
}

// TestOpsAuthKeySources checks where keys come from (code, key file,
// environment variable, then the file the environment names) and the Build
// errors of a misconfiguration.
func TestOpsAuthKeySources(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.txt")
	tests := []struct {
		name    string
		env     map[string]string
		cfg     chapkit.AuthConfig
		valid   []string // keys that must authenticate
		invalid []string // keys that must not
		wantErr string   // Build error, when any
	}{
		{name: "env single key", env: map[string]string{"CHAPKIT_API_KEYS": testKey},
			valid: []string{testKey}, invalid: []string{otherTestKey}},
		{name: "env list trimmed, empty items dropped", env: map[string]string{"CHAPKIT_API_KEYS": " " + testKey + " ,, " + otherTestKey + " ,"},
			valid: []string{testKey, otherTestKey}, invalid: []string{" " + testKey, ""}},
		{name: "custom env var", env: map[string]string{"MY_KEYS": testKey, "CHAPKIT_API_KEYS": otherTestKey}, cfg: chapkit.AuthConfig{EnvVar: "MY_KEYS"},
			valid: []string{testKey}, invalid: []string{otherTestKey}},
		{name: "env unset", env: map[string]string{"CHAPKIT_API_KEYS": ""},
			wantErr: "No API keys configured. Provide api_keys, api_key_file, or set environment variable."},
		{name: "file with comments and blank lines",
			cfg:   chapkit.AuthConfig{APIKeyFile: "# production keys\n\n  " + testKey + "  \n# " + otherTestKey + "\n\n"},
			valid: []string{testKey}, invalid: []string{otherTestKey, "# " + otherTestKey, "# production keys"}},
		{name: "code keys win over the file and env", env: map[string]string{"CHAPKIT_API_KEYS": otherTestKey},
			cfg:   chapkit.AuthConfig{APIKeys: []string{testKey}, APIKeyFile: missing},
			valid: []string{testKey}, invalid: []string{otherTestKey}},
		{name: "file wins over env", env: map[string]string{"CHAPKIT_API_KEYS": otherTestKey},
			cfg: chapkit.AuthConfig{APIKeyFile: testKey + "\n"}, valid: []string{testKey}, invalid: []string{otherTestKey}},
		{name: "missing file", cfg: chapkit.AuthConfig{APIKeyFile: missing}, wantErr: "API key file not found: " + missing},
		{name: "file without keys", cfg: chapkit.AuthConfig{APIKeyFile: "# none\n"},
			wantErr: "No API keys configured. Provide api_keys, api_key_file, or set environment variable."},
		{name: "empty code keys", cfg: chapkit.AuthConfig{APIKeys: []string{}}, env: map[string]string{"CHAPKIT_API_KEYS": testKey},
			wantErr: "No API keys configured. Provide api_keys, api_key_file, or set environment variable."},
		{name: "key file variable", env: map[string]string{"CHAPKIT_API_KEYS": "", "CHAPKIT_API_KEY_FILE": "\n" + testKey + "\n"},
			valid: []string{testKey}, invalid: []string{otherTestKey}},
		{name: "key file variable, missing file", env: map[string]string{"CHAPKIT_API_KEYS": "", "CHAPKIT_API_KEY_FILE": missing},
			wantErr: "API key file not found: " + missing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("CHAPKIT_API_KEYS", "")
			t.Setenv("CHAPKIT_API_KEY_FILE", "")
			for k, v := range tc.env {
				if k == "CHAPKIT_API_KEY_FILE" && v != missing {
					v = writeFile(t, v)
				}
				t.Setenv(k, v)
			}
			cfg := tc.cfg
			if cfg.APIKeyFile != "" && cfg.APIKeyFile != missing {
				cfg.APIKeyFile = writeFile(t, cfg.APIKeyFile)
			}
			b := builderFor(t).WithAuth(cfg)
			if tc.wantErr != "" {
				_, err := b.Build()
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Build() error = %v, want %q", err, tc.wantErr)
				}
				return
			}
			h := apptest.Start(t, b).Handler()
			for _, k := range tc.valid {
				if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", k); rec.Code != http.StatusOK {
					t.Errorf("key %q: status %d, want 200", k, rec.Code)
				}
			}
			for _, k := range tc.invalid {
				if rec := testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", k); rec.Code != http.StatusUnauthorized {
					t.Errorf("key %q: status %d, want 401", k, rec.Code)
				}
			}
		})
	}
}

// TestOpsAuthLoaders checks the exported key helpers.
func TestOpsAuthLoaders(t *testing.T) {
	t.Setenv("OPS_TEST_KEYS", " a , b,,c ")
	if got, want := strings.Join(chapkit.LoadAPIKeysFromEnv("OPS_TEST_KEYS"), "|"), "a|b|c"; got != want {
		t.Errorf("LoadAPIKeysFromEnv = %q, want %q", got, want)
	}
	if got := chapkit.LoadAPIKeysFromEnv("OPS_TEST_UNSET_VARIABLE"); len(got) != 0 {
		t.Errorf("LoadAPIKeysFromEnv(unset) = %q, want none", got)
	}
	keys, err := chapkit.LoadAPIKeysFromFile(writeFile(t, "# c\nk1\n\n  k2 \n#k3\n"))
	if err != nil || strings.Join(keys, "|") != "k1|k2" {
		t.Errorf("LoadAPIKeysFromFile = %q, %v; want k1|k2", keys, err)
	}
	for key, want := range map[string]bool{"": false, "123456789012345": false, "1234567890123456": true, testKey: true} {
		if got := chapkit.ValidateAPIKeyFormat(key); got != want {
			t.Errorf("ValidateAPIKeyFormat(%q) = %v, want %v", key, got, want)
		}
	}
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func withLogBuffer(buf *syncBuffer) func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
	return func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithLogger(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	}
}

// TestOpsAuthLogs checks that the direct-keys warning is logged once per
// app and that no log line ever holds more than the key prefix.
func TestOpsAuthLogs(t *testing.T) {
	var buf syncBuffer
	b := builderFor(t)
	withLogBuffer(&buf)(b)
	withAuth(chapkit.AuthConfig{APIKeys: []string{testKey}})(b)
	b.WithLogging()
	h := apptest.Start(t, b).Handler()
	testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", testKey)
	testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "", "X-API-Key", otherTestKey)
	testkit.Request(t, h, http.MethodGet, "/api/v1/info", "", "")
	logs := buf.String()
	if n := strings.Count(logs, "Using direct API keys - not recommended for production"); n != 1 {
		t.Errorf("direct-keys warning logged %d times, want 1", n)
	}
	for _, event := range []string{"auth.success", "auth.invalid_key", "auth.missing_key", "key_prefix=sk_test", "key_prefix=sk_prod"} {
		if !strings.Contains(logs, event) {
			t.Errorf("logs lack %q", event)
		}
	}
	for _, key := range []string{testKey, otherTestKey} {
		if strings.Contains(logs, key[:8]) {
			t.Errorf("logs hold more of key %s than its prefix:\n%s", key[:7], logs)
		}
	}
}
