package chapkit

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func perms(p *Permissions) Permissions {
	if p == nil {
		return AllPermissions
	}
	return *p
}

// mountRoutes registers every route the options ask for.
func (a *App) mountRoutes() {
	e := a.echo
	e.GET("/api/v1/info", a.getInfo)
	if a.b.health != nil {
		a.mountHealth(orDefault(a.b.health.Prefix, "/health"))
	}
	if a.b.system {
		a.mountSystem("/api/v1/system")
	}
	if a.b.jobs != nil {
		a.mountJobs(orDefault(a.b.jobs.Prefix, "/api/v1/jobs"))
	}
	if a.b.artifacts != nil {
		a.mountArtifacts(orDefault(a.b.artifacts.Prefix, "/api/v1/artifacts"), perms(a.b.artifacts.Permissions))
	}
	if a.b.tasks != nil {
		a.mountTasks(orDefault(a.b.tasks.Prefix, "/api/v1/tasks"), perms(a.b.tasks.Permissions))
	}
}

// group mounts routes under a prefix with one error family. Echo's own
// groups are not used: a group with middleware registers catch-all
// routes, which would turn every 405 under its prefix into a 404.
type group struct {
	e      *echo.Echo
	prefix string
	fam    echo.MiddlewareFunc
}

func (a *App) group(prefix string, f family) group {
	return group{e: a.echo, prefix: prefix, fam: withFamily(f)}
}

func (g group) GET(path string, h echo.HandlerFunc)    { g.e.GET(g.prefix+path, h, g.fam) }
func (g group) POST(path string, h echo.HandlerFunc)   { g.e.POST(g.prefix+path, h, g.fam) }
func (g group) PUT(path string, h echo.HandlerFunc)    { g.e.PUT(g.prefix+path, h, g.fam) }
func (g group) PATCH(path string, h echo.HandlerFunc)  { g.e.PATCH(g.prefix+path, h, g.fam) }
func (g group) DELETE(path string, h echo.HandlerFunc) { g.e.DELETE(g.prefix+path, h, g.fam) }

// pathID returns the :id path parameter when it is a ULID, or the
// invalid-ULID error with the resource path as its instance.
func pathID(c echo.Context, prefix string) (string, error) {
	raw := c.Param("id")
	if !wire.ValidID(raw) {
		e := problem.InvalidULID("chapkit.pathID", raw)
		e.Instance = prefix + "/" + raw
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

// parsePage reads the page and size query parameters (CONTRACT §1.6):
// non-integers are 422 items; pagination is on only when both are given,
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
		pages = (total + int64(p.size) - 1) / int64(p.size)
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
