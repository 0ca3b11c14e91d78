package chapkit_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/chapkit-go/chapkit"

	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// fullApp has every option that mounts routes, auth and a custom route.
func fullApp(t *testing.T, mods ...func(*chapkit.ServiceBuilder) *chapkit.ServiceBuilder) *chapkit.App {
	t.Helper()
	b := builderFor(t).WithMonitoring().WithLogging().WithDocs().WithConsole().
		WithAuth(chapkit.AuthConfig{APIKeys: []string{testKey}}).
		WithRoutes(func(a *chapkit.App) {
			a.Echo().GET("/custom/:name/*", func(c echo.Context) error { return c.JSON(http.StatusOK, map[string]string{"message": "custom"}) })
		})
	for _, m := range mods {
		b = m(b)
	}
	return apptest.Start(t, b)
}

// openAPIDoc fetches /openapi.json and checks it against the OpenAPI 3.1
// schema with libopenapi-validator.
func openAPIDoc(t *testing.T, app *chapkit.App) (map[string]any, validator.Validator) {
	t.Helper()
	rec := testkit.Request(t, app.Handler(), http.MethodGet, "/openapi.json", "", "")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != ctJSON {
		t.Fatalf("GET /openapi.json: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	doc, err := libopenapi.NewDocument(rec.Body.Bytes())
	if err != nil {
		t.Fatalf("parse OpenAPI document: %v", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("openapi = %q, want 3.1.0", v)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("build validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("invalid OpenAPI document: %s: %s", e.Message, e.Reason)
			for _, se := range e.SchemaValidationErrors {
				t.Errorf("  %s at %s", se.Reason, se.KeywordLocation+" "+se.FieldPath)
			}
		}
	}
	return object(t, rec.Body.Bytes()), v
}

var echoParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// templateOf is the OpenAPI path template of an Echo route pattern.
func templateOf(p string) string {
	p = echoParam.ReplaceAllString(p, "{$1}")
	if strings.HasSuffix(p, "*") {
		p = strings.TrimSuffix(p, "*") + "{path}"
	}
	return p
}

// TestOpsOpenAPIRoutes fails when a registered route is missing from the
// document, or the document has an operation no route serves.
func TestOpsOpenAPIRoutes(t *testing.T) {
	app := fullApp(t)
	doc, _ := openAPIDoc(t, app)
	paths := doc["paths"].(map[string]any)
	want := map[string]bool{}
	for _, r := range app.Echo().Routes() {
		if r.Method == echo.RouteNotFound {
			continue
		}
		p, m := templateOf(r.Path), strings.ToLower(r.Method)
		if m == "head" {
			// Every GET route answers HEAD too; HEAD is documented through
			// its GET, so the GET must be there.
			m = "get"
		}
		want[m+" "+p] = true
		item, ok := paths[p].(map[string]any)
		if !ok || item[m] == nil {
			t.Errorf("route %s %s is missing from the OpenAPI document", r.Method, r.Path)
		}
	}
	for p, item := range paths {
		for m := range item.(map[string]any) {
			if !want[m+" "+p] {
				t.Errorf("document has %s %s, which no route serves", m, p)
			}
		}
	}
	for _, must := range []string{
		"post /api/v1/tasks/{id}/$execute", "post /api/v1/jobs/{id}/$cancel", "get /api/v1/artifacts/{id}/$expand",
		"get /api/v1/artifacts/{id}/$tree", "get /api/v1/jobs/{id}/$stream", "get /health/$stream", "get /health",
		"get /metrics", "get /openapi.json", "get /docs", "patch /api/v1/tasks/{id}", "get /custom/{name}/{path}",
		"get /api/v1/jobs/{id}/$logs",
	} {
		if !want[must] {
			t.Errorf("app does not serve %s", must)
		}
	}

	// Details of one operation: path parameter, body, responses, auth.
	exec := paths["/api/v1/tasks/{id}/$execute"].(map[string]any)["post"].(map[string]any)
	responses := exec["responses"].(map[string]any)
	for _, code := range []string{"202", "400", "401", "503"} {
		if responses[code] == nil {
			t.Errorf("$execute documents no %s response", code)
		}
	}
	params := exec["parameters"].([]any)
	if len(params) != 1 || params[0].(map[string]any)["name"] != "id" || params[0].(map[string]any)["in"] != "path" {
		t.Errorf("$execute parameters = %v, want the path id", params)
	}
	create := paths["/api/v1/tasks"].(map[string]any)["post"].(map[string]any)
	if create["requestBody"] == nil || create["responses"].(map[string]any)["422"] == nil {
		t.Errorf("task creation lacks its body or its 422")
	}
	health := paths["/health"].(map[string]any)["get"].(map[string]any)
	if sec, ok := health["security"].([]any); !ok || len(sec) != 0 {
		t.Errorf("/health security = %v, want [] (exempt)", health["security"])
	}
}

// TestOpsOpenAPIPermissions checks that a route a permission removed is
// not documented.
func TestOpsOpenAPIPermissions(t *testing.T) {
	app := fullApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithTasks(nil, chapkit.TasksConfig{Permissions: &chapkit.ReadOnly})
	})
	doc, _ := openAPIDoc(t, app)
	tasks := doc["paths"].(map[string]any)["/api/v1/tasks"].(map[string]any)
	if tasks["post"] != nil || tasks["get"] == nil {
		t.Errorf("read-only tasks document %v, want get only", tasks)
	}
	if _, ok := doc["paths"].(map[string]any)["/api/v1/tasks/{id}/$execute"]; !ok {
		t.Errorf("$execute is mounted under every permission and must be documented")
	}
}

// TestOpsOpenAPIResponses validates real responses against the document.
func TestOpsOpenAPIResponses(t *testing.T) {
	app := apptest.Start(t, builderFor(t).WithMonitoring().WithLogging().WithDocs())
	_, v := openAPIDoc(t, app)
	h := app.Handler()
	id := shellTask(t, h, "true")
	jobID := execute(t, h, id)
	waitJob(t, h, jobID)
	job := getJob(t, h, jobID)
	for _, tc := range []struct{ method, path, body string }{
		{http.MethodGet, "/api/v1/tasks", ""},
		{http.MethodGet, "/api/v1/tasks/" + id, ""},
		{http.MethodGet, "/api/v1/tasks/not-a-ulid", ""},
		{http.MethodPost, "/api/v1/tasks", `{"command":"echo hi"}`},
		{http.MethodPost, "/api/v1/tasks", `{}`},
		{http.MethodGet, "/api/v1/jobs", ""},
		{http.MethodGet, "/api/v1/jobs/" + jobID, ""},
		{http.MethodGet, "/api/v1/artifacts/" + job["artifact_id"].(string) + "/$tree", ""},
		{http.MethodGet, "/api/v1/info", ""},
		{http.MethodGet, "/health", ""},
	} {
		req, _ := http.NewRequest(tc.method, "http://localhost"+tc.path, strings.NewReader(tc.body))
		req.Header.Set("X-API-Key", testKey)
		if tc.body != "" {
			req.Header.Set("Content-Type", ctJSON)
		}
		rec := testkit.Request(t, h, tc.method, tc.path, tc.body, map[bool]string{true: ctJSON}[tc.body != ""], "X-API-Key", testKey)
		resp := rec.Result()
		if ok, errs := v.ValidateHttpResponse(req, resp); !ok {
			for _, e := range errs {
				t.Errorf("%s %s → %d does not match the document: %s (%s)", tc.method, tc.path, rec.Code, e.Message, e.Reason)
				for _, se := range e.SchemaValidationErrors {
					t.Errorf("  %s at %s", se.Reason, se.KeywordLocation+" "+se.FieldPath)
				}
			}
		}
	}
}

var assetRef = regexp.MustCompile(`(?:src|href)="([^"]+)"`)

// TestOpsDocsPage checks that /docs loads its scripts and styles from the
// service itself, also when auth is on.
func TestOpsDocsPage(t *testing.T) {
	app := fullApp(t)
	h := app.Handler()
	rec := testkit.Request(t, h, http.MethodGet, "/docs", "", "")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	page := rec.Body.String()
	refs := assetRef.FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("docs page references %d assets, want the script and the stylesheet:\n%s", len(refs), page)
	}
	for _, m := range refs {
		u := m[1]
		if !strings.HasPrefix(u, "/") || strings.HasPrefix(u, "//") || strings.Contains(u, "://") {
			t.Errorf("asset %q is not served by the service", u)
			continue
		}
		rec := testkit.Request(t, h, http.MethodGet, u, "", "") // no key: exempt with /docs
		if rec.Code != http.StatusOK || rec.Body.Len() < 1000 {
			t.Errorf("GET %s: status %d, %d bytes", u, rec.Code, rec.Body.Len())
		}
		wantType := map[bool]string{true: "text/css", false: "text/javascript"}[strings.HasSuffix(u, ".css")]
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, wantType) {
			t.Errorf("GET %s: Content-Type %q, want %s", u, ct, wantType)
		}
	}
	if !strings.Contains(page, `"/openapi.json"`) {
		t.Errorf("docs page does not load /openapi.json")
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/docs/nope.js", "", "", "X-API-Key", testKey); rec.Code != http.StatusNotFound {
		t.Errorf("unknown asset: status %d, want 404", rec.Code)
	}
	if rec := testkit.Request(t, h, http.MethodGet, "/docs/nope.js", "", ""); rec.Code != http.StatusUnauthorized {
		t.Errorf("unknown asset without a key: status %d, want 401 (only the real assets are exempt)", rec.Code)
	}
	var doc map[string]any
	if err := json.Unmarshal(testkit.Request(t, h, http.MethodGet, "/openapi.json", "", "").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
}
