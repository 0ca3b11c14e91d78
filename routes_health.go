package chapkit

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

func (a *App) mountHealth(prefix string) {
	a.echo.GET(prefix, a.getHealth)
	a.echo.GET(prefix+"/$stream", a.streamHealth)
}

// checkResult is one entry of the checks object; message is omitted when empty.
type checkResult struct {
	State   HealthState `json:"state"`
	Message string      `json:"message,omitempty"`
}

// healthStatus is the /health body; checks keep their registration order.
type healthStatus struct {
	Status HealthState
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

var stateRank = map[HealthState]int{Healthy: 0, Degraded: 1, Unhealthy: 2}

// health runs the checks in order, the database check last (it replaces a
// user check of the same name), and returns the worst state overall.
func (a *App) health(ctx context.Context) healthStatus {
	cfg := a.b.health
	checks := make([]HealthCheck, 0, len(cfg.Checks)+1)
	for _, c := range cfg.Checks {
		if !cfg.NoDatabaseCheck && c.Name == "database" {
			continue
		}
		checks = append(checks, c)
	}
	if !cfg.NoDatabaseCheck {
		checks = append(checks, HealthCheck{Name: "database", Check: a.databaseCheck})
	}
	out := healthStatus{Status: Healthy, checks: map[string]checkResult{}}
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
			r = checkResult{State: Unhealthy, Message: "Check failed: panic"}
		}
	}()
	state, msg, err := c.Check(ctx)
	if err != nil {
		return checkResult{State: Unhealthy, Message: "Check failed: " + err.Error()}
	}
	if _, ok := stateRank[state]; !ok {
		state = Unhealthy
	}
	return checkResult{State: state, Message: msg}
}

func (a *App) databaseCheck(ctx context.Context) (HealthState, string, error) {
	if a.db == nil {
		return Unhealthy, "Database connection failed: database not open", nil
	}
	if err := a.db.WithContext(ctx).Exec("SELECT 1").Error; err != nil {
		return Unhealthy, "Database connection failed: " + err.Error(), nil
	}
	return Healthy, "", nil
}

func (a *App) getHealth(c echo.Context) error {
	h := a.health(c.Request().Context())
	status := http.StatusOK
	if h.Status == Unhealthy {
		status = http.StatusServiceUnavailable
	}
	return c.JSON(status, h)
}

// streamHealth sends the health status now and then every poll_interval
// seconds (default 1, at least 10 ms) until the client leaves or the
// service drains.
func (a *App) streamHealth(c echo.Context) error {
	interval := time.Second
	if raw := c.QueryParam("poll_interval"); raw != "" {
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return problem.Invalid("chapkit.streamHealth", problem.Violation{Type: "float_parsing", Loc: []any{"query", "poll_interval"},
				Msg: "Input should be a valid number, unable to parse string as a number", Input: raw})
		}
		interval = max(time.Duration(f*float64(time.Second)), 10*time.Millisecond)
	}
	sse, err := a.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()
	ctx := c.Request().Context()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if err := sse.event(a.health(ctx)); err != nil {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return nil
		case <-a.closing:
			return nil
		}
	}
}

func (a *App) getInfo(c echo.Context) error { return c.JSON(http.StatusOK, a.info) }

func (a *App) mountSystem(prefix string) {
	a.echo.GET(prefix, a.getSystem)
	a.echo.GET(prefix+"/apps", func(c echo.Context) error { return c.JSON(http.StatusOK, []any{}) })
	a.echo.GET(prefix+"/apps/$schema", func(c echo.Context) error {
		return c.JSON(http.StatusOK, map[string]any{"type": "array", "items": map[string]any{"$ref": "#/$defs/AppInfo"},
			"$defs": map[string]any{"AppInfo": map[string]any{"type": "object", "title": "AppInfo",
				"properties": map[string]any{"name": map[string]any{"type": "string"}, "version": map[string]any{"type": "string"},
					"prefix": map[string]any{"type": "string"}, "description": map[string]any{"type": "string"},
					"author": map[string]any{"type": "string"}, "entry": map[string]any{"type": "string"},
					"is_package": map[string]any{"type": "boolean"}},
				"required": []string{"name", "version", "prefix", "entry", "is_package"}}}})
	})
}

func (a *App) getSystem(c echo.Context) error {
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
