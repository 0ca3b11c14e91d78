package chapkit

import (
	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/job"
)

// opsConfig holds the operational options (auth, logging, monitoring,
// API docs) as the builder records them and the app keeps a copy.
type opsConfig struct{}

// clone copies the options so two apps built from one builder share nothing.
func (o opsConfig) clone() opsConfig { return o }

// validate reports configuration mistakes of the operational options.
func (o opsConfig) validate() []error { return nil }

// installMiddleware adds the operational middleware to e, before routes.
func (a *App) installMiddleware(e *echo.Echo) {}

// mountOps registers the operational routes (metrics, OpenAPI, docs),
// after every API route is mounted.
func (a *App) mountOps() {}

// jobObserver returns what the scheduler reports job changes to, or nil.
func (a *App) jobObserver() job.Observer { return nil }
