package httpapi

import (
	"log/slog"
	"net/http"
	"testing"

	"github.com/labstack/echo/v4"
)

// fullDeps turns on every option that mounts routes.
func fullDeps() Deps {
	all := Permissions{Create: true, Read: true, Update: true, Delete: true}
	return Deps{
		Info: map[string]any{"display_name": "Test"}, Title: "Test", Version: "1.0.0",
		Log: slog.New(slog.DiscardHandler), MaxBodyBytes: 1 << 20, MaxStreams: 10,
		Health:     &Health{Prefix: "/health"},
		System:     true,
		Jobs:       &Resource{Prefix: "/api/v1/jobs"},
		Artifacts:  &Resource{Prefix: "/api/v1/artifacts", Permissions: all},
		Tasks:      &Resource{Prefix: "/api/v1/tasks", Permissions: all},
		Auth:       &Auth{Header: "X-API-Key", Keys: []string{"k"}, Exempt: []string{"/health"}, Source: "direct"},
		Logging:    true,
		Monitoring: &Monitoring{Path: "/metrics", ServiceName: "Test"},
		Docs:       true,
	}
}

// TestEveryMountedRouteIsDocumented fails when a route is mounted without
// going through a route table, that is without documentation.
func TestEveryMountedRouteIsDocumented(t *testing.T) {
	s := New(fullDeps())
	s.MountOps()
	n := 0
	for _, r := range s.Echo().Routes() {
		if !documentedMethods[r.Method] {
			continue // Echo's route-not-found entries
		}
		n++
		method := r.Method
		if method == http.MethodHead && s.implicitHead[r.Path] {
			method = http.MethodGet // the HEAD twin of a GET route shares its documentation
		}
		d, ok := s.docs[method+" "+r.Path]
		if !ok {
			t.Errorf("%s %s is mounted but has no documentation entry", r.Method, r.Path)
			continue
		}
		if d.tag == "" || d.summary == "" || d.status == 0 {
			t.Errorf("%s %s: documentation entry lacks a tag, summary or status: %+v", r.Method, r.Path, d)
		}
	}
	if n < 30 {
		t.Errorf("only %d routes mounted; the full configuration should mount every table", n)
	}
}

// TestUndocumentedRouteIsDetected checks the check above: a route mounted
// on Echo directly has no entry.
func TestUndocumentedRouteIsDetected(t *testing.T) {
	s := New(fullDeps())
	s.Echo().GET("/extra", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	if _, ok := s.docs["GET /extra"]; ok {
		t.Fatal("a route mounted outside the tables has a documentation entry")
	}
	doc := s.OpenAPI()
	if got := doc.Paths["/extra"]["get"].Tags; len(got) != 1 || got[0] != "Custom" {
		t.Errorf("tags of an undocumented route = %v, want [Custom]", got)
	}
}

// TestPermissionsLeaveRoutesOut checks that a table route whose
// permission is false is neither mounted nor documented.
func TestPermissionsLeaveRoutesOut(t *testing.T) {
	d := fullDeps()
	d.Tasks.Permissions = Permissions{Read: true}
	s := New(d)
	mounted := map[string]bool{}
	for _, r := range s.Echo().Routes() {
		mounted[r.Method+" "+r.Path] = true
	}
	for _, key := range []string{"POST /api/v1/tasks", "PUT /api/v1/tasks/:id", "PATCH /api/v1/tasks/:id", "DELETE /api/v1/tasks/:id"} {
		if mounted[key] || s.docs[key].summary != "" {
			t.Errorf("%s is mounted or documented under read-only permissions", key)
		}
	}
	for _, key := range []string{"GET /api/v1/tasks", "GET /api/v1/tasks/:id", "POST /api/v1/tasks/:id/$execute"} {
		if !mounted[key] {
			t.Errorf("%s is not mounted under read-only permissions", key)
		}
	}
}
