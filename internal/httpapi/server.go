// Package httpapi is the HTTP layer of a chapkit service: the route tables
// (method, path, handler, permission and documentation of every route),
// the handlers, the one error handler, Server-Sent Events, the OpenAPI
// generator, the docs page and the auth, logging and metrics middleware.
//
// It knows nothing of the builder or the App: the root package resolves
// the configuration into a [Deps] value, and hands the managers over with
// [Server.Attach] once it has opened the database. The wire shapes,
// status codes and error families are described in docs/http-api.md.
package httpapi

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/livelog"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/task"
)

// Deps is everything the HTTP layer needs to know, resolved: prefixes
// carry their defaults, limits are positive. A nil resource mounts no
// routes.
type Deps struct {
	// NodeID is the job node this app runs as ("" without jobs): the node
	// label of every metric and the X-Chapkit-Node header of /health.
	NodeID string
	// Info is the body of GET /api/v1/info, marshalled as it is.
	Info any
	// Title, Version, Summary and Description fill the OpenAPI info object.
	Title, Version, Summary, Description string
	Log                                  *slog.Logger

	// MaxBodyBytes caps request bodies (413 beyond); MaxStreams caps
	// open event streams (503 beyond).
	MaxBodyBytes int64
	MaxStreams   int

	Health    *Health
	System    bool
	Jobs      *Resource
	Artifacts *Resource
	Tasks     *Resource

	Auth       *Auth
	Logging    bool
	Monitoring *Monitoring
	Docs       bool
	// Console mounts the web console; nil means none.
	Console *Console
	// TracerProvider, when set, traces every request (docs/tracing.md).
	TracerProvider trace.TracerProvider
}

// Resource is the prefix and permissions of a CRUD resource.
type Resource struct {
	Prefix      string
	Permissions Permissions
}

// Permissions selects the CRUD routes of a resource; a route whose
// permission is false is not mounted.
type Permissions struct {
	Create, Read, Update, Delete bool
}

// Managers are the domain managers the handlers call; a nil one belongs
// to an option the app does not use.
type Managers struct {
	DB        *gorm.DB
	Scheduler *job.Scheduler
	Tasks     *task.Manager
	Artifacts *artifact.Manager
	// Live is the output of shell jobs running in this process.
	Live *livelog.Hub
}

// Server is the HTTP side of one app. It is safe for concurrent use once
// [Server.MountOps] has run.
type Server struct {
	d    Deps
	log  *slog.Logger
	echo *echo.Echo
	mgrs atomic.Pointer[Managers]
	docs map[string]opDoc // "METHOD /full/path" → documentation
	// implicitHead holds the paths whose HEAD route mount added next to
	// their GET; the OpenAPI document leaves those out.
	implicitHead map[string]bool
	// unmounted are the docs of table routes a permission left out.
	unmounted []opDoc
	metrics   *metrics

	draining  atomic.Bool
	closing   chan struct{} // closed when the drain begins: streams end
	drainOnce sync.Once
	streams   atomic.Int64
}

// New builds the Echo instance with its middleware and mounts the
// built-in API routes. Custom routes may be added on [Server.Echo]
// afterwards; [Server.MountOps] then mounts metrics and docs.
func New(d Deps) *Server {
	s := &Server{d: d, log: d.Log, docs: map[string]opDoc{}, implicitHead: map[string]bool{}, closing: make(chan struct{})}
	s.mgrs.Store(&Managers{})
	if d.Monitoring != nil {
		s.metrics = newMetrics(s, *d.Monitoring)
	}
	s.echo = s.newEcho()
	s.mountAPI()
	return s
}

// Echo returns the Echo instance.
func (s *Server) Echo() *echo.Echo { return s.echo }

// Attach hands over the managers the handlers call. The app calls it
// during Start, before it serves.
func (s *Server) Attach(m Managers) { s.mgrs.Store(&m) }

// m returns the attached managers.
func (s *Server) m() *Managers { return s.mgrs.Load() }

// Drain begins the drain: $execute answers 503 and open event streams
// end. It is idempotent.
func (s *Server) Drain() {
	s.drainOnce.Do(func() {
		s.draining.Store(true)
		close(s.closing)
	})
}

// JobObserver returns what the scheduler reports job changes to: the
// metrics, or nil without monitoring.
func (s *Server) JobObserver() job.Observer {
	if s.metrics == nil {
		return nil
	}
	return s.metrics
}

func (s *Server) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = compactJSON{}
	e.HTTPErrorHandler = s.handleError
	s.installMiddleware(e) // first: auth runs before any rewrite or redirect
	e.Pre(unescapeDollar)
	e.Pre(middleware.RemoveTrailingSlashWithConfig(middleware.TrailingSlashConfig{RedirectCode: http.StatusTemporaryRedirect}))
	return e
}

// installMiddleware adds the operational middleware to e, before routes.
// The order, outermost first: tracing (so every request has a span, and
// the others run inside it), metrics (so 401s are measured too), auth
// (before routing, so unknown paths get 401, and around request logging,
// so a 401 carries no X-Request-ID), request logging.
func (s *Server) installMiddleware(e *echo.Echo) {
	if s.d.TracerProvider != nil {
		e.Pre(s.traceRequests(s.d.TracerProvider))
	}
	if s.metrics != nil {
		e.Pre(s.metrics.measure)
		e.Use(s.metrics.countActive)
	}
	if s.d.Auth != nil {
		s.logKeySource(s.d.Auth)
		e.Pre(s.authenticate(s.d.Auth))
	}
	if s.d.Logging {
		e.Pre(s.logRequests)
	}
}

// unescapeDollar lets clients spell the $ of operation segments as %24
// (/tasks/{id}/%24execute): Echo routes on the raw path when the request
// has one, so the escape is undone before routing.
func unescapeDollar(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if u.RawPath != "" && strings.Contains(u.RawPath, "%24") {
			raw := strings.ReplaceAll(u.RawPath, "%24", "$")
			if raw == u.Path {
				raw = ""
			}
			u.RawPath = raw
		}
		return next(c)
	}
}

// compactJSON writes bodies compactly, without the trailing newline of
// Echo's default encoder, so success and error bodies match the Python
// service byte for byte.
type compactJSON struct{}

func (compactJSON) Serialize(c echo.Context, i any, indent string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" stays "<" in stdout, as the Python service sends it
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(i); err != nil {
		return err
	}
	_, err := c.Response().Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return err
}

func (compactJSON) Deserialize(c echo.Context, i any) error {
	return json.NewDecoder(c.Request().Body).Decode(i)
}
