package httpapi

import (
	"bytes"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/docsui"
)

// The fixed paths of the API documentation: chapkit clients know them,
// and they are among the paths served without an API key by default.
const (
	docsPath    = "/docs"
	openAPIPath = "/openapi.json"
)

func docsAssetNames() []string { return docsui.Names() }

// docsRoutes is the table of the documentation routes.
func (s *Server) docsRoutes() []route {
	const tag = "Docs"
	return []route{
		{http.MethodGet, openAPIPath, func(c echo.Context) error { return c.JSON(http.StatusOK, s.OpenAPI()) }, always, familyNone,
			opDoc{tag: tag, summary: "This OpenAPI document", status: 200, contentType: jsonCT, result: anyObject}},
		{http.MethodGet, docsPath, s.docsPage, always, familyNone,
			opDoc{tag: tag, summary: "Interactive API documentation", status: 200, contentType: "text/html", result: fixed(map[string]any{"type": "string"})}},
		{http.MethodGet, docsPath + "/:asset", docsAsset, always, familyNone, opDoc{tag: tag, summary: "Scripts and styles of the documentation page", status: 200,
			contentType: "application/octet-stream", result: fixed(map[string]any{"type": "string"}),
			errs: []errDoc{{http.StatusNotFound, shapeDetail, "No such asset", nil}}}},
	}
}

// docsPage serves the Swagger UI page, whose scripts and styles are
// embedded in the module, so it works offline.
func (s *Server) docsPage(c echo.Context) error {
	var buf bytes.Buffer
	if err := docsui.Render(&buf, docsui.Page{
		Title: s.d.Title + " - API documentation", AssetBase: docsPath, SpecURL: openAPIPath,
	}); err != nil {
		return err
	}
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

// docsAsset serves one embedded script or style of the docs page; they
// change only with the module, so caches may keep them for a day.
var docsAsset = embeddedAsset(docsui.Assets, "public, max-age=86400")

// embeddedAsset serves the file named by the :asset parameter from fsys,
// typed by its extension, with the given Cache-Control; an unknown name is
// a 404.
func embeddedAsset(fsys fs.FS, cacheControl string) echo.HandlerFunc {
	return func(c echo.Context) error {
		name := c.Param("asset")
		data, err := fs.ReadFile(fsys, path.Clean(name))
		if err != nil {
			return echo.ErrNotFound
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = echo.MIMEOctetStream
		}
		c.Response().Header().Set("Cache-Control", cacheControl)
		return c.Blob(http.StatusOK, ct, data)
	}
}
