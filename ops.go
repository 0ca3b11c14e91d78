package chapkit

import (
	"slices"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/job"
)

// opsConfig holds the operational options (auth, logging, monitoring,
// API docs) as the builder records them and the app keeps a copy.
type opsConfig struct {
	auth       *authConfig
	logging    bool
	monitoring *MonitoringConfig
	docs       bool

	// rt is the app's running state of these options (metrics registry,
	// resolved keys). It is created per app by installMiddleware and never
	// copied by clone, so two apps built from one builder share nothing.
	rt *opsRuntime
}

// opsRuntime is what one app's operational middleware and routes share.
type opsRuntime struct {
	keys    *resolvedKeys
	metrics *metrics
}

// clone copies the options so two apps built from one builder share nothing.
func (o opsConfig) clone() opsConfig {
	c := opsConfig{logging: o.logging, docs: o.docs}
	if o.auth != nil {
		a := *o.auth
		a.cfg.APIKeys = slices.Clone(a.cfg.APIKeys)
		a.cfg.UnauthenticatedPaths = slices.Clone(a.cfg.UnauthenticatedPaths)
		if a.keys != nil {
			k := *a.keys
			k.keys = slices.Clone(k.keys)
			a.keys = &k
		}
		c.auth = &a
	}
	if o.monitoring != nil {
		m := *o.monitoring
		c.monitoring = &m
	}
	return c
}

// validate reports configuration mistakes of the operational options. It
// resolves the API keys (CONTRACT §4.10), so a missing key file or an
// empty key set fails Build instead of the first request; the resolved
// keys are kept for the app Build is about to assemble.
func (o *opsConfig) validate() []error {
	var errs []error
	if o.auth != nil {
		keys, err := resolveKeys(o.auth.cfg)
		if err != nil {
			errs = append(errs, err)
		}
		o.auth.keys = keys
	}
	return errs
}

// installMiddleware adds the operational middleware to e, before routes.
// The order, outermost first: metrics (so 401s are measured too), auth
// (before routing, so unknown paths get 401, and around request logging,
// so a 401 carries no X-Request-ID), request logging.
func (a *App) installMiddleware(e *echo.Echo) {
	o := &a.b.ops
	o.rt = &opsRuntime{}
	if o.logging {
		a.log = withRequestAttrs(a.log)
	}
	if o.monitoring != nil {
		o.rt.metrics = newMetrics(a, *o.monitoring)
		e.Pre(o.rt.metrics.measure)
		e.Use(o.rt.metrics.countActive)
	}
	if o.auth != nil && o.auth.keys != nil {
		o.rt.keys = o.auth.keys
		a.logKeySource(o.auth.keys)
		e.Pre(a.authenticate(o.auth.cfg, o.auth.keys))
	}
	if o.logging {
		e.Pre(a.logRequests)
	}
}

// mountOps registers the operational routes (metrics, OpenAPI, docs),
// after every API route is mounted.
func (a *App) mountOps() {
	o := a.b.ops
	if o.monitoring != nil && o.rt != nil && o.rt.metrics != nil {
		a.echo.GET(o.rt.metrics.prefix, o.rt.metrics.serve)
	}
	if o.docs {
		a.mountDocs()
	}
}

// jobObserver returns what the scheduler reports job changes to, or nil.
func (a *App) jobObserver() job.Observer {
	if rt := a.b.ops.rt; rt != nil && rt.metrics != nil {
		return rt.metrics
	}
	return nil
}
