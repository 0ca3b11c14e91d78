package chapkit_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
)

// TestOpenAPIRootServersAndSecurity checks the document's root keys that
// linters require: servers is the relative "/" (what a reader assumes
// without it), and security is [] on an open service (no operation needs
// credentials) and the API-key requirement with auth on.
func TestOpenAPIRootServersAndSecurity(t *testing.T) {
	t.Parallel()
	open := apptest.Start(t, builderFor(t).WithDocs())
	doc, _ := openAPIDoc(t, open)
	if diff := cmp.Diff([]any{map[string]any{"url": "/"}}, doc["servers"]); diff != "" {
		t.Errorf("servers (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]any{}, doc["security"]); diff != "" {
		t.Errorf("open service: security (-want +got):\n%s", diff)
	}

	secured := fullApp(t)
	doc, _ = openAPIDoc(t, secured)
	want := []any{map[string]any{"APIKeyHeader": []any{}}}
	if diff := cmp.Diff(want, doc["security"]); diff != "" {
		t.Errorf("auth on: security (-want +got):\n%s", diff)
	}
}
