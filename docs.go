package chapkit

import "github.com/chapkit-go/chapkit/openapi"

// WithDocs mounts GET /openapi.json, an OpenAPI 3.1 document generated from
// the routes the app actually registered (custom routes included), and
// GET /docs, an interactive page (Swagger UI) whose scripts and styles are
// embedded in the module and served under /docs/, so it works offline.
func (b *ServiceBuilder) WithDocs() *ServiceBuilder {
	b.docs = true
	return b
}

// OpenAPI builds the OpenAPI 3.1 document of the routes registered on the
// app's Echo instance when it is called, custom routes included: a route
// a permission left out is not registered, so it is not documented. It is
// safe for concurrent use.
func (a *App) OpenAPI() *openapi.Document { return a.http.OpenAPI() }
