// Package console holds the built web console: the bundle that
// scripts/console-build.sh makes from the sources in console/ (Preact,
// bundled by esbuild; docs/console.md says why), embedded so a service
// serves it offline and a Go user needs no Node.js.
package console

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
)

//go:embed dist
var dist embed.FS

// Assets is the bundle: app.js and app.css.
var Assets = mustSub(dist, "dist")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// Names lists the files of the bundle.
func Names() []string {
	entries, _ := fs.ReadDir(Assets, ".")
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// Page is what the console's HTML page needs.
type Page struct {
	// Title is the service's display name.
	Title string
	// Base is the console's prefix with a trailing slash ("/console/");
	// the page's asset and config URLs start with it. (No <base> element:
	// it would turn the console's #/... links into page loads.)
	Base string
}

var page = template.Must(template.New("console").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} – console</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{.Base}}assets/app.css">
<script type="module" src="{{.Base}}assets/app.js"></script>
</head>
<body>
<div id="app" data-config="{{.Base}}config.json">Loading the console…</div>
<noscript>The console needs JavaScript.</noscript>
</body>
</html>
`))

// Render writes the console's HTML page.
func Render(w io.Writer, p Page) error { return page.Execute(w, p) }
