package chapkit_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestEchoStaysInTheHTTPLayer fails when a non-test file outside
// internal/httpapi imports Echo, other than the one root file that
// exposes it (App.Echo). Domain packages take plain types, so the same
// managers work from a CLI, a test or a worker, and an Echo upgrade
// touches one package.
func TestEchoStaysInTheHTTPLayer(t *testing.T) {
	allowed := map[string]bool{"app.go": true}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch path {
			case "bench", "internal/httpapi", ".git":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || allowed[path] {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, "github.com/labstack/echo") {
				t.Errorf("%s imports %s; only internal/httpapi and app.go may", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
