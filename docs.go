package chapkit

import (
	"bytes"
	"io/fs"
	"mime"
	"net/http"
	"path"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/docsui"
)

// The fixed paths of the API documentation, the ones chapkit clients and
// the default unauthenticated paths of CONTRACT §4.10 know.
const (
	docsPath    = "/docs"
	openAPIPath = "/openapi.json"
)

// WithDocs mounts GET /openapi.json, an OpenAPI 3.1 document generated from
// the routes the app actually registered (custom routes included), and
// GET /docs, an interactive page (Swagger UI) whose scripts and styles are
// embedded in the module and served under /docs/, so it works offline.
func (b *ServiceBuilder) WithDocs() *ServiceBuilder {
	b.ops.docs = true
	return b
}

func docsAssetNames() []string { return docsui.Names() }

func (a *App) mountDocs() {
	e := a.echo
	e.GET(openAPIPath, func(c echo.Context) error {
		return c.JSON(http.StatusOK, a.OpenAPI())
	})
	e.GET(docsPath, func(c echo.Context) error {
		var buf bytes.Buffer
		if err := docsui.Render(&buf, docsui.Page{
			Title: a.info.DisplayName + " - API documentation", AssetBase: docsPath, SpecURL: openAPIPath,
		}); err != nil {
			return err
		}
		return c.HTMLBlob(http.StatusOK, buf.Bytes())
	})
	e.GET(docsPath+"/:asset", func(c echo.Context) error {
		name := c.Param("asset")
		data, err := fs.ReadFile(docsui.Assets, path.Clean(name))
		if err != nil {
			return echo.ErrNotFound
		}
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = echo.MIMEOctetStream
		}
		c.Response().Header().Set("Cache-Control", "public, max-age=86400")
		return c.Blob(http.StatusOK, ct, data)
	})
}
