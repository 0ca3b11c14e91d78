package chapkit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"

	"regexp"
	"slices"
	"time"

	"go.opentelemetry.io/otel/trace"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/inject"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// Permissions selects the CRUD routes of a resource. A route whose
// permission is false is not registered at all, so it answers 405 (or 404
// when no method of its path is left) and is missing from the OpenAPI
// document.
type Permissions struct {
	Create, Read, Update, Delete bool
}

// AllPermissions allows every operation; it is the default.
var AllPermissions = Permissions{Create: true, Read: true, Update: true, Delete: true}

// ReadOnly allows reading only.
var ReadOnly = Permissions{Read: true}

// ArtifactsConfig configures the artifact store and its routes.
type ArtifactsConfig struct {
	// Prefix of the routes; default /api/v1/artifacts.
	Prefix string
	// Permissions; nil means AllPermissions.
	Permissions *Permissions
}

// JobsConfig configures the job scheduler and its routes.
type JobsConfig struct {
	// Prefix of the routes; default /api/v1/jobs.
	Prefix string
	// Scheduler is the scheduler's configuration; job.Config documents
	// each field and its default. The app sets Logger and Observer, and
	// TracerProvider when WithTracing is used.
	Scheduler job.Config
	// MaxConcurrency, MaxPending, DrainTimeout, RetryInterrupted and
	// AbandonAfter are shorthands: when non-zero, each replaces the
	// Scheduler field of the same name. A full $execute queue answers 503,
	// Shutdown waits up to the drain timeout for running jobs, and a call
	// that ignores its cancellation or timeout keeps its slot for at most
	// AbandonAfter (docs/jobs.md). Negative values are a Build error.
	MaxConcurrency   int
	MaxPending       int
	DrainTimeout     time.Duration
	RetryInterrupted int
	// RescueAfter is a shorthand for Scheduler.RescueAfter: the heartbeat
	// age after which a node counts as dead and its jobs are rescued.
	RescueAfter  time.Duration
	AbandonAfter time.Duration
	// Retention, when set, prunes finished jobs and their artifacts in the
	// background.
	Retention *RetentionConfig
}

// schedulerConfig is the job.Config the shorthands and Scheduler give.
func (c JobsConfig) schedulerConfig() job.Config {
	cfg := c.Scheduler
	cfg.MaxConcurrency = cmp.Or(c.MaxConcurrency, cfg.MaxConcurrency)
	cfg.MaxPending = cmp.Or(c.MaxPending, cfg.MaxPending)
	cfg.DrainTimeout = cmp.Or(c.DrainTimeout, cfg.DrainTimeout)
	cfg.RetryInterrupted = cmp.Or(c.RetryInterrupted, cfg.RetryInterrupted)
	cfg.RescueAfter = cmp.Or(c.RescueAfter, cfg.RescueAfter)
	cfg.AbandonAfter = cmp.Or(c.AbandonAfter, cfg.AbandonAfter)
	return cfg
}

// TasksConfig configures task templates, their execution and routes.
type TasksConfig struct {
	// Prefix of the routes; default /api/v1/tasks.
	Prefix string
	// Permissions; nil means AllPermissions. $execute is always mounted.
	Permissions *Permissions
	// SkipOrphanValidation turns off the start-up check that disables
	// "python" tasks whose function is not registered, so that an
	// execution never meets a missing function.
	SkipOrphanValidation bool
	// Manager is the task manager's configuration; task.Config documents
	// each field and its default. The app sets Jobs, Artifacts, Registry,
	// Container and Logger.
	Manager task.Config
	// MaxOutput and DefaultTimeout are shorthands: when non-zero, each
	// replaces the Manager field of the same name (the cap on a shell
	// task's stdout and stderr, each, in bytes; the timeout of tasks
	// without timeout_seconds).
	MaxOutput      int64
	DefaultTimeout time.Duration
}

// managerConfig is the task.Config the shorthands and Manager give.
func (c TasksConfig) managerConfig() task.Config {
	cfg := c.Manager
	cfg.MaxOutput = cmp.Or(c.MaxOutput, cfg.MaxOutput)
	cfg.DefaultTimeout = cmp.Or(c.DefaultTimeout, cfg.DefaultTimeout)
	return cfg
}

// HealthState is the state a health check reports.
type HealthState string

// The health states, best first.
const (
	Healthy   HealthState = "healthy"
	Degraded  HealthState = "degraded"
	Unhealthy HealthState = "unhealthy"
)

// HealthCheck is a named check run by GET /health, in registration order.
// A returned error makes the check unhealthy with "Check failed: <err>".
type HealthCheck struct {
	Name  string
	Check func(ctx context.Context) (HealthState, string, error)
}

// HealthConfig configures the health routes.
type HealthConfig struct {
	// Prefix of the routes; default /health.
	Prefix string
	Checks []HealthCheck
	// NoDatabaseCheck leaves out the built-in "database" check.
	NoDatabaseCheck bool
}

// Limits bound what clients can make the service hold, so that no client
// can exhaust its memory or connections (docs/limits.md).
type Limits struct {
	// MaxBodyBytes caps request bodies (413 beyond); 0 = 1 MiB.
	MaxBodyBytes int64
	// MaxStreams caps open SSE streams (503 beyond); 0 = 1,000.
	MaxStreams int
}

// DatabaseOptions tunes a SQLite database the builder opens.
type DatabaseOptions struct {
	// Synchronous is NORMAL (default) or FULL.
	Synchronous string
	// BusyTimeout is how long a SQLite statement waits for another
	// process's write lock; 0 = 5 s.
	BusyTimeout time.Duration
	// MaxOpenConns caps the PostgreSQL connection pool; 0 = 16. Each node
	// holds one more connection for notifications. SQLite always uses one.
	MaxOpenConns int
}

// Hook is a start-up or shutdown hook.
type Hook func(ctx context.Context, app *App) error

// ServiceBuilder assembles an [App]. Its With* methods only record
// intent: they do no I/O, start nothing and never panic; mistakes are
// collected and returned together by [ServiceBuilder.Build]. A builder is
// not safe for concurrent use; Build may be called more than once and
// gives independent apps.
type ServiceBuilder struct {
	info      ServiceInfo
	errs      []error
	dbTarget  string
	dbHandle  *gorm.DB
	dbDialect gorm.Dialector
	dbOpts    DatabaseOptions
	logger    *slog.Logger
	health    *HealthConfig
	system    bool
	artifacts *ArtifactsConfig
	hierarchy *artifact.Hierarchy
	jobs      *JobsConfig
	tasks     *TasksConfig
	registry  *registry.Registry
	container *inject.Container
	limits    Limits
	startup   []Hook
	shutdown  []Hook
	routes    []func(*App)
	handlers  map[string]job.Handler

	// The operational options: API keys, request logging, metrics, docs.
	auth       *AuthConfig
	logging    bool
	monitoring *MonitoringConfig
	docs       bool
	console    *ConsoleConfig
	// tracerProvider is set by WithTracing; nil traces nothing.
	tracerProvider trace.TracerProvider
}

// NewServiceBuilder starts a builder for a service described by info.
func NewServiceBuilder(info ServiceInfo) *ServiceBuilder {
	return &ServiceBuilder{info: info, container: inject.New()}
}

func (b *ServiceBuilder) fail(err error) *ServiceBuilder {
	b.errs = append(b.errs, err)
	return b
}

// WithDatabase selects the database: a SQLite file path, ":memory:" or ""
// (in memory, the default), a "sqlite:///path" or
// "sqlite+aiosqlite:///path" URL, a PostgreSQL URL ("postgres://…" or
// "postgresql://…"), a ready *gorm.DB (not closed by the app) or a
// gorm.Dialector (SQLite or PostgreSQL). Anything else is a Build error.
// Several processes may share one database; see docs/scaling-out.md.
func (b *ServiceBuilder) WithDatabase(target any, opts ...DatabaseOptions) *ServiceBuilder {
	b.dbTarget, b.dbHandle, b.dbDialect = "", nil, nil
	switch t := target.(type) {
	case nil:
	case string:
		b.dbTarget = t
	case *gorm.DB:
		if t == nil {
			return b.fail(errors.New("WithDatabase: nil *gorm.DB"))
		}
		b.dbHandle = t
	case gorm.Dialector:
		b.dbDialect = t
	default:
		return b.fail(fmt.Errorf("Expected str, Database, or None, got %T. Use .WithDatabase(\"\") for the default, .WithDatabase(\"tasks.db\") for a file, or .WithDatabase(db) for a pre-configured *gorm.DB", target))
	}
	if len(opts) > 1 {
		return b.fail(errors.New("WithDatabase: at most one DatabaseOptions"))
	}
	if len(opts) == 1 {
		b.dbOpts = opts[0]
	}
	return b
}

// WithLogger sets the logger of the service; the default discards logs.
func (b *ServiceBuilder) WithLogger(l *slog.Logger) *ServiceBuilder {
	b.logger = l
	return b
}

// WithHealth mounts /health and /health/$stream with the given checks and
// the built-in database check.
func (b *ServiceBuilder) WithHealth(checks ...HealthCheck) *ServiceBuilder {
	return b.WithHealthConfig(HealthConfig{Checks: checks})
}

// WithHealthConfig mounts the health routes as cfg says.
func (b *ServiceBuilder) WithHealthConfig(cfg HealthConfig) *ServiceBuilder {
	cfg.Checks = slices.Clone(cfg.Checks)
	b.health = &cfg
	return b
}

// WithSystem mounts /api/v1/system and /api/v1/system/apps.
func (b *ServiceBuilder) WithSystem() *ServiceBuilder {
	b.system = true
	return b
}

// WithArtifacts enables the artifact store with the hierarchy that names
// its levels, and mounts its routes.
func (b *ServiceBuilder) WithArtifacts(h artifact.Hierarchy, cfg ...ArtifactsConfig) *ServiceBuilder {
	if len(cfg) > 1 {
		return b.fail(errors.New("WithArtifacts: at most one ArtifactsConfig"))
	}
	c := ArtifactsConfig{}
	if len(cfg) == 1 {
		c = cfg[0]
	}
	h.LevelLabels = maps.Clone(h.LevelLabels)
	b.artifacts, b.hierarchy = &c, &h
	return b
}

// WithJobs enables the durable job scheduler and mounts its routes.
func (b *ServiceBuilder) WithJobs(cfg JobsConfig) *ServiceBuilder {
	b.jobs = &cfg
	return b
}

// WithTasks enables task templates and their execution. reg holds the Go
// functions "python" tasks may name; nil means registry.Default. Tasks need
// WithArtifacts and WithJobs too: every execution is a job and stores its
// result as an artifact.
func (b *ServiceBuilder) WithTasks(reg *registry.Registry, cfg ...TasksConfig) *ServiceBuilder {
	if len(cfg) > 1 {
		return b.fail(errors.New("WithTasks: at most one TasksConfig"))
	}
	c := TasksConfig{}
	if len(cfg) == 1 {
		c = cfg[0]
	}
	if reg == nil {
		reg = registry.Default
	}
	b.tasks, b.registry = &c, reg
	return b
}

// WithJobHandler registers the handler of a job kind of your own, so the
// program can submit durable jobs through App.Scheduler().Submit(ctx,
// kind, args) next to task executions. Kinds are stored with each job:
// keep them stable, and keep the handler registered while jobs of the
// kind may still be pending (they run again after a restart).
func (b *ServiceBuilder) WithJobHandler(kind string, h job.Handler) *ServiceBuilder {
	switch {
	case kind == "" || h == nil:
		return b.fail(errors.New("WithJobHandler: kind and handler are required"))
	case kind == task.JobKind:
		return b.fail(fmt.Errorf("WithJobHandler: kind %q is reserved for task executions", kind))
	case b.handlers[kind] != nil:
		return b.fail(fmt.Errorf("WithJobHandler: kind %q registered twice", kind))
	}
	if b.handlers == nil {
		b.handlers = map[string]job.Handler{}
	}
	b.handlers[kind] = h
	return b
}

// WithLimits sets the request and stream bounds (docs/limits.md).
func (b *ServiceBuilder) WithLimits(l Limits) *ServiceBuilder {
	b.limits = l
	return b
}

// OnStartup adds a hook run at start-up, after the database and the job
// recovery and before orphan validation; hooks run in the order added and
// a failing one aborts Start.
func (b *ServiceBuilder) OnStartup(h Hook) *ServiceBuilder {
	b.startup = append(b.startup, h)
	return b
}

// OnShutdown adds a hook run at shutdown after the drain, in the order added.
func (b *ServiceBuilder) OnShutdown(h Hook) *ServiceBuilder {
	b.shutdown = append(b.shutdown, h)
	return b
}

// WithRoutes adds custom routes; f is called at Build with the app, whose
// Echo() it may extend. Routes are mounted after the built-in ones.
func (b *ServiceBuilder) WithRoutes(f func(app *App)) *ServiceBuilder {
	b.routes = append(b.routes, f)
	return b
}

// Provide makes v available to registered task functions that inject a
// field of type T (keys match exactly: provide interfaces as interfaces).
func Provide[T any](b *ServiceBuilder, v T) *ServiceBuilder {
	if err := inject.Provide[T](b.container, v); err != nil {
		return b.fail(err)
	}
	return b
}

// ProvideFunc makes T available through f, called for every execution that
// needs it with the job's context.
func ProvideFunc[T any](b *ServiceBuilder, f func(ctx context.Context) (T, error)) *ServiceBuilder {
	if err := inject.ProvideFunc[T](b.container, f); err != nil {
		return b.fail(err)
	}
	return b
}

var healthName = regexp.MustCompile(`^[\p{L}\p{N}_-]+$`)

// validate checks the options against each other and returns every
// problem found, in a fixed order: mistakes the With* methods recorded,
// then those resolve reported (resolveErrs), then the checks below.
func (b *ServiceBuilder) validate(resolveErrs []error) error {
	errs := slices.Clone(b.errs)
	errs = append(errs, resolveErrs...)
	if b.info.DisplayName == "" {
		errs = append(errs, errors.New("ServiceInfo.DisplayName is required"))
	}
	errs = append(errs, b.checkRanges()...)
	if b.health != nil {
		for _, c := range b.health.Checks {
			if !healthName.MatchString(c.Name) {
				errs = append(errs, fmt.Errorf("Health check name '%s' contains invalid characters. Only alphanumeric characters, underscores, and hyphens are allowed.", c.Name))
			}
			if c.Check == nil {
				errs = append(errs, fmt.Errorf("health check %q has no Check function", c.Name))
			}
		}
	}
	if b.tasks != nil && b.artifacts == nil {
		errs = append(errs, errors.New("Task execution requires artifacts to store results. Call `WithArtifacts(...)` before `Build()`."))
	}
	if len(b.handlers) > 0 && b.jobs == nil {
		errs = append(errs, errors.New("job handlers need a job scheduler. Call `WithJobs(...)` before `Build()`."))
	}
	if b.tasks != nil && b.jobs == nil {
		errs = append(errs, errors.New("Task execution requires a job scheduler. Call `WithJobs(...)` before `Build()`."))
	}
	return errors.Join(errs...)
}

// Build checks the configuration and assembles the app: routes, managers
// and injector. It opens nothing and starts nothing; [App.Start] does.
// Every configuration mistake is returned, joined.
func (b *ServiceBuilder) Build() (*App, error) {
	s, errs := b.resolve()
	if err := b.validate(errs); err != nil {
		return nil, err
	}
	a := newApp(b, s)
	if b.tasks != nil {
		// Check here, not at the first execution, that every function's
		// injected types resolve.
		if err := a.registry.Check(a.container); err != nil {
			return nil, err
		}
		// From here on the functions and provided values are fixed: a
		// late registration is an error, not a silent no-op.
		a.registry.Freeze()
		a.container.Freeze()
	}
	return a, nil
}

// MustBuild is Build for main packages and examples: it panics on error.
func (b *ServiceBuilder) MustBuild() *App {
	a, err := b.Build()
	if err != nil {
		panic(err)
	}
	return a
}
