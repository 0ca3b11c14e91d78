package chapkit_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/chapkit-go/chapkit"
)

func TestWithAuthFromEnv(t *testing.T) {
	build := func(t *testing.T) *chapkit.App {
		t.Helper()
		app := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "env auth"}).WithAuthFromEnv().MustBuild()
		if err := app.Start(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { app.Shutdown(t.Context()) })
		return app
	}
	status := func(app *chapkit.App, key string) int {
		req := httptest.NewRequest(http.MethodGet, "/api/v1/info", nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		rec := httptest.NewRecorder()
		app.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	t.Run("no variables: open", func(t *testing.T) {
		t.Setenv("CHAPKIT_API_KEYS", "")
		t.Setenv("CHAPKIT_API_KEY_FILE", "")
		if got := status(build(t), ""); got != http.StatusOK {
			t.Fatalf("GET /api/v1/info = %d, want 200", got)
		}
	})
	t.Run("keys in the environment: required", func(t *testing.T) {
		t.Setenv("CHAPKIT_API_KEYS", "sk_test_0123456789abcdef")
		app := build(t)
		if got := status(app, ""); got != http.StatusUnauthorized {
			t.Fatalf("without a key = %d, want 401", got)
		}
		if got := status(app, "sk_test_0123456789abcdef"); got != http.StatusOK {
			t.Fatalf("with the key = %d, want 200", got)
		}
	})
}
