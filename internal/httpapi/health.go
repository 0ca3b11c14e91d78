package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"reflect"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/openapi"
	"github.com/chapkit-go/chapkit/problem"
)

// Health configures the health routes.
type Health struct {
	Prefix string
	// Checks run in order; see [HealthCheck].
	Checks []HealthCheck
	// NoDatabaseCheck leaves out the built-in "database" check.
	NoDatabaseCheck bool
}

// HealthCheck is a named check. Check returns "healthy", "degraded" or
// "unhealthy" and a message; an error, a panic or any other state counts
// as unhealthy.
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) (state string, message string, err error)
}

// state is a health state as the body reports it.
type state string

const (
	healthy   state = "healthy"
	degraded  state = "degraded"
	unhealthy state = "unhealthy"
)

// abandonedCheckName is the health check present while abandoned job
// calls still run (docs/jobs.md).
const abandonedCheckName = "abandoned_calls"

// systemPrefix is where the system routes live; it is not configurable.
const systemPrefix = "/api/v1/system"

// infoRoutes is the table of the service information route.
func (s *Server) infoRoutes() []route {
	str := map[string]any{"type": "string"}
	strMap := map[string]any{"type": "object", "additionalProperties": str}
	info := fixed(map[string]any{"type": "object", "title": "ServiceInfo",
		"properties": map[string]any{
			"id": str, "display_name": str, "version": str,
			"summary": str, "description": str,
			"contact": strMap, "license_info": strMap,
		},
		"required":             []string{"id", "display_name", "version"},
		"additionalProperties": true})
	return []route{
		{http.MethodGet, "/api/v1/info", func(c echo.Context) error { return c.JSON(http.StatusOK, s.d.Info) }, always, familyNone,
			opDoc{tag: "Service", summary: "Service information", status: 200, contentType: jsonCT, result: info}},
	}
}

// healthRoutes is the table of the health routes.
func (s *Server) healthRoutes() []route {
	const tag = "Observability"
	healthSchema := func(g *schemaGen) any {
		return map[string]any{"type": "object", "title": "HealthStatus",
			"properties": map[string]any{"status": healthStateSchema(), "checks": map[string]any{"type": "object", "additionalProperties": g.schema(reflect.TypeFor[checkResult]())}},
			"required":   []string{"status"}}
	}
	return []route{
		{http.MethodGet, "", s.getHealth, always, familyNone, opDoc{tag: tag, summary: "Health status (503 when unhealthy)", status: 200,
			contentType: jsonCT, result: healthSchema,
			errs: []errDoc{{http.StatusServiceUnavailable, "", "Unhealthy (body is the health status)", healthSchema}}}},
		{http.MethodGet, "/$stream", s.streamHealth, always, familyNone, opDoc{tag: tag, summary: "Health status as Server-Sent Events",
			query:  []openapi.Parameter{queryParam("poll_interval", "number", "seconds between events (default 1)")},
			status: 200, contentType: sseCT, result: fixed(map[string]any{"type": "string", "description": "data: <HealthStatus JSON> events"}),
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid poll_interval", nil}, {http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining", nil}}}},
	}
}

// systemRoutes is the table of the system routes.
func (s *Server) systemRoutes() []route {
	const tag = "Service"
	return []route{
		{http.MethodGet, "", s.getSystem, always, familyNone, opDoc{tag: tag, summary: "System information", status: 200, contentType: jsonCT,
			result: fixed(map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}})}},
		{http.MethodGet, "/apps", func(c echo.Context) error { return c.JSON(http.StatusOK, []any{}) }, always, familyNone,
			opDoc{tag: tag, summary: "Mounted static apps", status: 200, contentType: jsonCT, result: fixed(map[string]any{"type": "array"})}},
		{http.MethodGet, "/apps/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, appListSchema()) }, always, familyNone,
			opDoc{tag: tag, summary: "JSON Schema of the app list", status: 200, contentType: jsonCT, result: anyObject}},
	}
}

// healthStateSchema is the schema of a health state.
func healthStateSchema() map[string]any {
	return map[string]any{"type": "string", "enum": []string{string(healthy), string(degraded), string(unhealthy)}}
}

// appListSchema is the JSON Schema of the (always empty) app list.
func appListSchema() map[string]any {
	return map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/AppInfo"},
		"$defs": map[string]any{"AppInfo": map[string]any{"type": "object", "title": "AppInfo",
			"properties": map[string]any{"name": map[string]any{"type": "string"}, "version": map[string]any{"type": "string"},
				"prefix": map[string]any{"type": "string"}, "description": map[string]any{"type": "string"},
				"author": map[string]any{"type": "string"}, "entry": map[string]any{"type": "string"},
				"is_package": map[string]any{"type": "boolean"}},
			"required": []string{"name", "version", "prefix", "entry", "is_package"}}}}
}

// checkResult is one entry of the checks object; message is omitted when empty.
type checkResult struct {
	State   state  `json:"state"`
	Message string `json:"message,omitempty"`
}

// healthStatus is the /health body; checks keep their registration order.
type healthStatus struct {
	Status state
	names  []string
	checks map[string]checkResult
}

func (h healthStatus) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"status":`)
	s, _ := json.Marshal(h.Status)
	b.Write(s)
	if len(h.names) > 0 {
		b.WriteString(`,"checks":{`)
		for i, n := range h.names {
			if i > 0 {
				b.WriteByte(',')
			}
			k, _ := json.Marshal(n)
			v, err := json.Marshal(h.checks[n])
			if err != nil {
				return nil, err
			}
			b.Write(k)
			b.WriteByte(':')
			b.Write(v)
		}
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

var stateRank = map[state]int{healthy: 0, degraded: 1, unhealthy: 2}

// health runs the checks in order, the database check last (it replaces a
// user check of the same name), and returns the worst state overall.
func (s *Server) health(ctx context.Context) healthStatus {
	cfg := s.d.Health
	checks := make([]HealthCheck, 0, len(cfg.Checks)+1)
	for _, c := range cfg.Checks {
		if !cfg.NoDatabaseCheck && c.Name == "database" {
			continue
		}
		checks = append(checks, c)
	}
	if !cfg.NoDatabaseCheck {
		checks = append(checks, HealthCheck{Name: "database", Check: s.databaseCheck})
	}
	// A call the scheduler gave up on still runs on a goroutine nobody can
	// stop: report it while it lasts. The check appears only then, so the
	// body of a service without one is unchanged.
	if sched := s.sched(); sched != nil {
		if now, _ := sched.Abandoned(); now > 0 {
			checks = append(checks, HealthCheck{Name: abandonedCheckName, Check: func(context.Context) (string, string, error) {
				return string(degraded), fmt.Sprintf("%d job call(s) ignored their cancellation or timeout and still run abandoned", now), nil
			}})
		}
	}
	out := healthStatus{Status: healthy, checks: map[string]checkResult{}}
	for _, c := range checks {
		r := runCheck(ctx, c)
		if _, seen := out.checks[c.Name]; !seen {
			out.names = append(out.names, c.Name)
		}
		out.checks[c.Name] = r
		if stateRank[r.State] > stateRank[out.Status] {
			out.Status = r.State
		}
	}
	return out
}

func runCheck(ctx context.Context, c HealthCheck) (r checkResult) {
	defer func() {
		if p := recover(); p != nil {
			r = checkResult{State: unhealthy, Message: "Check failed: panic"}
		}
	}()
	st, msg, err := c.Check(ctx)
	if err != nil {
		return checkResult{State: unhealthy, Message: "Check failed: " + err.Error()}
	}
	if _, ok := stateRank[state(st)]; !ok {
		st = string(unhealthy)
	}
	return checkResult{State: state(st), Message: msg}
}

// databaseCheckTimeout bounds the database check: a database that does
// not answer a trivial query within it (locked, unreachable, or every
// connection busy) is unhealthy, rather than holding /health for as long
// as the lock or the driver's own timeout lasts.
const databaseCheckTimeout = 2 * time.Second

func (s *Server) databaseCheck(ctx context.Context) (string, string, error) {
	db := s.m().DB
	if db == nil {
		return string(unhealthy), "Database connection failed: database not open", nil
	}
	ctx, cancel := context.WithTimeout(ctx, databaseCheckTimeout)
	defer cancel()
	// The query runs on its own goroutine so that a driver that does not
	// honour the context (a statement blocked inside SQLite) cannot hold
	// the check past its deadline.
	done := make(chan error, 1)
	go func() { done <- db.WithContext(ctx).Exec("SELECT 1").Error }()
	select {
	case err := <-done:
		if err != nil {
			if ctx.Err() != nil {
				return string(unhealthy), fmt.Sprintf("Database did not respond within %s", databaseCheckTimeout), nil
			}
			return string(unhealthy), "Database connection failed: " + err.Error(), nil
		}
	case <-ctx.Done():
		return string(unhealthy), fmt.Sprintf("Database did not respond within %s", databaseCheckTimeout), nil
	}
	return string(healthy), "", nil
}

func (s *Server) getHealth(c echo.Context) error {
	h := s.health(c.Request().Context())
	status := http.StatusOK
	if h.Status == unhealthy {
		status = http.StatusServiceUnavailable
	}
	if s.d.NodeID != "" {
		// Health is per node: say which replica answered, without
		// changing the body chapkit clients parse.
		c.Response().Header().Set("X-Chapkit-Node", s.d.NodeID)
	}
	return c.JSON(status, h)
}

// streamHealth sends the health status now and then every poll_interval
// seconds (default 1, at least 10 ms) until the client leaves or the
// service drains.
func (s *Server) streamHealth(c echo.Context) error {
	interval := time.Second
	if raw := c.QueryParam("poll_interval"); raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return problem.Invalid("chapkit.streamHealth", problem.Violation{Type: "float_parsing", Loc: []any{"query", "poll_interval"},
				Msg: "Input should be a valid number, unable to parse string as a number", Input: raw})
		}
		interval = pollInterval(f)
	}
	sse, err := s.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()
	ctx := c.Request().Context()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := sse.event(s.health(ctx)); err != nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
	}
}

// Bounds of a health stream's poll_interval. Any number is accepted, as
// before, but it is clamped: a tiny, negative or not-a-number interval
// would make a tight loop and a huge one would overflow the duration.
const (
	minPollInterval = 10 * time.Millisecond
	maxPollInterval = time.Hour
)

// pollInterval turns poll_interval seconds into the interval used: NaN
// means the default second, and the rest is clamped to the bounds.
func pollInterval(seconds float64) time.Duration {
	switch {
	case math.IsNaN(seconds):
		return time.Second
	case seconds >= maxPollInterval.Seconds():
		return maxPollInterval
	case seconds <= minPollInterval.Seconds():
		return minPollInterval
	}
	return time.Duration(seconds * float64(time.Second))
}

func (s *Server) getSystem(c echo.Context) error {
	host, _ := os.Hostname()
	zone, _ := time.Now().Zone()
	return c.JSON(http.StatusOK, map[string]any{
		"current_time": wire.FormatTime(time.Now()),
		"timezone":     zone,
		"go_version":   strings.TrimPrefix(runtime.Version(), "go"),
		"platform":     platform(),
		"hostname":     host,
	})
}

func platform() string {
	release := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		release = "-" + strings.TrimSpace(string(b))
	}
	osName := runtime.GOOS
	if len(osName) > 0 {
		osName = strings.ToUpper(osName[:1]) + osName[1:]
	}
	return osName + release + "-" + runtime.GOARCH
}
