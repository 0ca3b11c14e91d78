// Package docsui embeds the interactive API documentation page: Swagger UI
// (npm package swagger-ui-dist, see assets/README.md), served by the
// service itself so the page works offline and sends no request elsewhere.
package docsui

import (
	"embed"
	"html/template"
	"io"
	"io/fs"
)

//go:embed assets/swagger-ui-bundle.js assets/swagger-ui.css
var assets embed.FS

// Assets are the files the page loads, by base name.
var Assets = mustSub(assets, "assets")

func mustSub(f fs.FS, dir string) fs.FS {
	s, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return s
}

// Names lists the asset base names.
func Names() []string { return []string{"swagger-ui-bundle.js", "swagger-ui.css"} }

// Page is what the HTML page needs to know.
type Page struct {
	// Title is the page title.
	Title string
	// AssetBase is the path the assets are served under, without a
	// trailing slash ("/docs").
	AssetBase string
	// SpecURL is the path of the OpenAPI document ("/openapi.json").
	SpecURL string
}

var page = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<link rel="stylesheet" href="{{.AssetBase}}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{{.AssetBase}}/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({
  url: {{.SpecURL}},
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
});
</script>
</body>
</html>
`))

// Render writes the HTML page.
func Render(w io.Writer, p Page) error { return page.Execute(w, p) }
