package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// perm is the permission a route needs to be mounted.
type perm int

const (
	always perm = iota // mounted whenever its resource is
	permCreate
	permRead
	permUpdate
	permDelete
)

// route is one entry of a resource's table: the table both mounts the
// route and documents it in the OpenAPI document, so a route cannot exist
// without its documentation.
type route struct {
	method string
	path   string // below the resource prefix; "" is the prefix itself
	h      echo.HandlerFunc
	perm   perm
	// fam is the error family of the route's errors that do not fix their
	// own (see docs/http-api.md); familyNone mounts no family marker,
	// which renders as problem details.
	fam family
	doc opDoc
}

// allows reports whether p lets a route needing r be mounted.
func (p Permissions) allows(r perm) bool {
	switch r {
	case permCreate:
		return p.Create
	case permRead:
		return p.Read
	case permUpdate:
		return p.Update
	case permDelete:
		return p.Delete
	default:
		return true
	}
}

// mount registers the routes of a table under prefix that p allows, and
// records their documentation. Echo's own groups are not used: a group
// with middleware registers catch-all routes, which would turn every 405
// under its prefix into a 404.
func (s *Server) mount(prefix string, p Permissions, table []route) {
	for _, r := range table {
		if !p.allows(r.perm) {
			s.unmounted = append(s.unmounted, r.doc)
			continue
		}
		var mw []echo.MiddlewareFunc
		if r.fam != familyNone {
			mw = append(mw, withFamily(r.fam))
		}
		full := prefix + r.path
		s.echo.Add(r.method, full, r.h, mw...)
		s.docs[r.method+" "+full] = r.doc
		if r.method == http.MethodGet {
			// Every GET route answers HEAD too, as HTTP asks of a general
			// server (health checkers and uptime monitors use it): the same
			// handler, status and headers, with the body discarded.
			s.echo.Add(http.MethodHead, full, r.h, append([]echo.MiddlewareFunc{headOnly}, mw...)...)
			s.implicitHead[full] = true
		}
	}
}

// headOnly discards the body a GET handler writes, for HEAD. Event
// streams see the method too (see openStream) and end after the headers.
func headOnly(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		res := c.Response()
		res.Writer = bodyless{res.Writer}
		return next(c)
	}
}

// bodyless is a response writer that keeps the status and headers and
// drops the body.
type bodyless struct{ http.ResponseWriter }

func (bodyless) Write(b []byte) (int, error) { return len(b), nil }

// Unwrap lets http.ResponseController reach the underlying writer (Flush).
func (w bodyless) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// allowAll is the permission set of resources without permissions.
var allowAll = Permissions{Create: true, Read: true, Update: true, Delete: true}

// mountAPI mounts the routes of every resource the app uses.
func (s *Server) mountAPI() {
	s.mount("", allowAll, s.infoRoutes())
	if h := s.d.Health; h != nil {
		s.mount(h.Prefix, allowAll, s.healthRoutes())
	}
	if s.d.System {
		s.mount(systemPrefix, allowAll, s.systemRoutes())
		if s.d.Jobs != nil {
			s.mount(systemPrefix, allowAll, s.nodeRoutes())
		}
	}
	if j := s.d.Jobs; j != nil {
		s.mount(j.Prefix, allowAll, s.jobRoutes())
	}
	if r := s.d.Artifacts; r != nil {
		s.mount(r.Prefix, r.Permissions, s.artifactRoutes())
	}
	if r := s.d.Tasks; r != nil {
		s.mount(r.Prefix, r.Permissions, s.taskRoutes())
	}
}

// MountOps mounts the operational routes (metrics, OpenAPI, docs). The
// app calls it after the custom routes, so the docs describe them too.
func (s *Server) MountOps() {
	if m := s.d.Monitoring; m != nil {
		s.mount("", allowAll, s.metricsRoutes())
	}
	if s.d.Docs {
		s.mount("", allowAll, s.docsRoutes())
	}
	if c := s.d.Console; c != nil {
		s.mount(c.Prefix, allowAll, s.consoleRoutes())
	}
}

// pathID returns the :id path parameter when it is a ULID, or the
// invalid-ULID error whose instance is the request path, without the query
// and with any suffix such as /$execute kept.
func pathID(c echo.Context, prefix string) (string, error) {
	raw := c.Param("id")
	if !wire.ValidID(raw) {
		e := problem.InvalidULID("chapkit.pathID", raw)
		e.Instance = c.Request().URL.Path
		return "", e
	}
	return raw, nil
}

// withInstance sets the resource path as the instance of a not-found error.
func withInstance(err error, instance string) error {
	var pe *problem.Error
	if errors.As(err, &pe) && pe.Kind == problem.KindNotFound && pe.Instance == "" {
		cp := *pe
		cp.Instance = instance
		return &cp
	}
	return err
}

// page is the parsed page and size of a list request.
type page struct {
	on         bool
	page, size int
}

// parsePage reads the page and size query parameters: non-integers are 422 items; pagination is on only when both are given,
// and then each must be at least 1.
func parsePage(c echo.Context) (page, []problem.Violation) {
	var items []problem.Violation
	var p page
	vals := map[string]*int{"page": &p.page, "size": &p.size}
	present := 0
	for _, name := range []string{"page", "size"} {
		raw, ok := c.QueryParams()[name]
		if !ok || len(raw) == 0 {
			continue
		}
		present++
		n, err := strconv.Atoi(raw[0])
		if err != nil {
			items = append(items, problem.Violation{Type: "int_parsing", Loc: []any{"query", name},
				Msg: "Input should be a valid integer, unable to parse string as an integer", Input: raw[0]})
			continue
		}
		*vals[name] = n
	}
	p.on = present == 2
	return p, items
}

func (p page) check() error {
	if !p.on {
		return nil
	}
	if p.page < 1 || p.size < 1 {
		e := problem.New(problem.KindModelInvalid, "chapkit.page",
			"1 validation error for PaginatedResponse: page and size must be greater than or equal to 1 (page=%d, size=%d)", p.page, p.size)
		return e
	}
	return nil
}

// envelope is the paginated list body.
type envelope[T any] struct {
	Items []T   `json:"items"`
	Total int64 `json:"total"`
	Page  int   `json:"page"`
	Size  int   `json:"size"`
	Pages int64 `json:"pages"`
}

func newEnvelope[T any](items []T, total int64, p page) envelope[T] {
	pages := int64(0)
	if total > 0 {
		// Not (total+size-1)/size: a size near the top of int64 overflows.
		pages = (total-1)/int64(p.size) + 1
	}
	if items == nil {
		items = []T{}
	}
	return envelope[T]{Items: items, Total: total, Page: p.page, Size: p.size, Pages: pages}
}

// created answers 201 with the entity and an absolute Location.
func created(c echo.Context, prefix, id string, body any) error {
	c.Response().Header().Set(echo.HeaderLocation, fmt.Sprintf("%s://%s%s/%s", c.Scheme(), c.Request().Host, prefix, id))
	return c.JSON(http.StatusCreated, body)
}
