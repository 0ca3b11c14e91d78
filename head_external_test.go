package chapkit_test

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/internal/docsui"
	"github.com/chapkit-go/chapkit/internal/testkit"
)

// TestHeadOnEveryGetRoute walks every GET route the OpenAPI document of a
// fully configured app lists and checks that HEAD answers with the same
// status and Content-Type as GET and no body; on an event stream HEAD
// returns the headers and ends instead of streaming.
func TestHeadOnEveryGetRoute(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithMonitoring().WithDocs().WithLogging()
	})
	h := app.Handler()
	srv := serve(t, h)
	taskID := shellTask(t, h, "echo head")
	job := waitJob(t, h, execute(t, h, taskID))
	ids := map[string]string{
		"/api/v1/tasks/":     taskID,
		"/api/v1/jobs/":      job["id"].(string),
		"/api/v1/artifacts/": job["artifact_id"].(string),
	}

	doc := object(t, testkit.Request(t, h, http.MethodGet, "/openapi.json", "", "").Body.Bytes())
	var paths []string
	for p, ops := range doc["paths"].(map[string]any) {
		if _, ok := ops.(map[string]any)["get"]; ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	if len(paths) < 15 {
		t.Fatalf("only %d GET routes documented: %v", len(paths), paths)
	}
	for _, p := range paths {
		target := strings.ReplaceAll(p, "{asset}", docsui.Names()[0])
		for prefix, id := range ids {
			if strings.HasPrefix(target, prefix+"{id}") {
				target = strings.Replace(target, "{id}", id, 1)
			}
		}
		if strings.Contains(target, "{") {
			t.Errorf("%s: no value for its path parameter", p)
			continue
		}
		t.Run(target, func(t *testing.T) {
			// GET through a real server, reading the headers only, since
			// an event stream does not end by itself.
			ctx, cancel := context.WithTimeout(t.Context(), testkit.Deadline)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+target, nil)
			client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("GET %s: %v", target, err)
			}
			_ = resp.Body.Close()

			// HEAD through the handler, so a body written is seen; it must
			// end by itself.
			done := make(chan struct{})
			var code int
			var ct, body string
			go func() {
				defer close(done)
				rec := testkit.Request(t, h, http.MethodHead, target, "", "")
				code, ct, body = rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
			}()
			select {
			case <-done:
			case <-time.After(testkit.Deadline):
				t.Fatalf("HEAD %s did not end", target)
			}
			if code != resp.StatusCode || ct != resp.Header.Get("Content-Type") || body != "" {
				t.Errorf("HEAD %s = %d %q body %q; GET = %d %q", target, code, ct, truncate(body), resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if code == http.StatusMethodNotAllowed {
				t.Errorf("HEAD %s is 405", target)
			}
		})
	}
}
