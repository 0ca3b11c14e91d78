package chapkit

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"net/url"
	"slices"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/httpapi"
	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/task"
)

// The defaults of the builder's options, applied in one place: resolve.
// Defaults of the scheduler and the task manager live with job.Config and
// task.Config, which apply their own.
const (
	defaultVersion         = "1.0.0"
	defaultHealthPrefix    = "/health"
	defaultJobsPrefix      = "/api/v1/jobs"
	defaultArtifactsPrefix = "/api/v1/artifacts"
	defaultTasksPrefix     = "/api/v1/tasks"
	defaultMetricsPath     = "/metrics"
	defaultAPIKeyHeader    = "X-API-Key"
	defaultMaxBodyBytes    = 1 << 20 // 1 MiB
	defaultMaxStreams      = 1000
	defaultPruneInterval   = time.Minute
	defaultPruneBatchSize  = 500
)

// defaultUnauthenticatedPaths are served without a key unless
// AuthConfig.UnauthenticatedPaths says otherwise.
var defaultUnauthenticatedPaths = []string{"/docs", "/redoc", "/openapi.json", "/health", "/"}

// settings is the configuration of an app, resolved once by Build:
// defaults applied, every slice and map copied, so the builder can be
// changed or built again without touching the app. It is never modified
// after Build.
type settings struct {
	info ServiceInfo
	log  *slog.Logger
	db   dbSettings

	// hierarchy is nil without artifacts.
	hierarchy *artifact.Hierarchy
	// jobs is nil without jobs; Start adds the logger and the observer.
	jobs *job.Config
	// retention is nil without a retention policy.
	retention *RetentionConfig
	// tasks is nil without tasks; Start adds the managers it calls.
	tasks              *task.Config
	skipOrphanValidate bool

	handlers          map[string]job.Handler
	startup, shutdown []Hook

	http httpapi.Deps
}

// dbSettings is the database the app uses: a handle, a dialector or a
// SQLite target, tried in that order.
type dbSettings struct {
	handle   *gorm.DB
	dialect  gorm.Dialector
	target   string
	sqlite   sqlitedb.Config
	postgres pgdb.Config
}

// resolve turns the builder's options into settings. Resolving the API
// keys reads the environment or a key file, so a missing key file or an
// empty key set is reported here, by Build, rather than at the first
// request.
func (b *ServiceBuilder) resolve() (settings, []error) {
	log := b.logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if b.logging {
		log = httpapi.WithRequestAttrs(log)
	}
	info := b.info
	info.Extra = maps.Clone(info.Extra)
	info.Contact = maps.Clone(info.Contact)
	info.LicenseInfo = maps.Clone(info.LicenseInfo)
	s := settings{
		info: info,
		log:  log,
		db: dbSettings{handle: b.dbHandle, dialect: b.dbDialect, target: b.dbTarget, sqlite: sqlitedb.Config{
			Synchronous: b.dbOpts.Synchronous, BusyTimeout: b.dbOpts.BusyTimeout, Logger: log,
		}, postgres: pgdb.Config{MaxOpenConns: b.dbOpts.MaxOpenConns, Logger: log}},
		handlers: maps.Clone(b.handlers),
		startup:  slices.Clone(b.startup),
		shutdown: slices.Clone(b.shutdown),
	}
	d := httpapi.Deps{
		Info:         info,
		Title:        info.DisplayName,
		Version:      cmp.Or(info.Version, defaultVersion),
		Summary:      info.Summary,
		Description:  cmp.Or(info.Description, info.Summary),
		Log:          log,
		MaxBodyBytes: cmp.Or(max(b.limits.MaxBodyBytes, 0), defaultMaxBodyBytes),
		MaxStreams:   cmp.Or(max(b.limits.MaxStreams, 0), defaultMaxStreams),
		System:       b.system,
		Logging:      b.logging,
		Docs:         b.docs,

		TracerProvider: b.tracerProvider,
	}
	if h := b.health; h != nil {
		d.Health = &httpapi.Health{Prefix: cmp.Or(h.Prefix, defaultHealthPrefix), NoDatabaseCheck: h.NoDatabaseCheck}
		for _, c := range h.Checks {
			d.Health.Checks = append(d.Health.Checks, healthCheck(c))
		}
	}
	if b.artifacts != nil {
		h := *b.hierarchy
		h.LevelLabels = maps.Clone(h.LevelLabels)
		s.hierarchy = &h
		d.Artifacts = &httpapi.Resource{Prefix: cmp.Or(b.artifacts.Prefix, defaultArtifactsPrefix), Permissions: b.artifacts.Permissions.resolve()}
	}
	if j := b.jobs; j != nil {
		cfg := j.schedulerConfig()
		cfg.NodeID = cmp.Or(cfg.NodeID, wire.NewID())
		if b.tracerProvider != nil {
			cfg.TracerProvider = b.tracerProvider
		}
		d.NodeID = cfg.NodeID
		s.jobs = &cfg
		if j.Retention != nil {
			r := j.Retention.withDefaults()
			s.retention = &r
		}
		d.Jobs = &httpapi.Resource{Prefix: cmp.Or(j.Prefix, defaultJobsPrefix)}
	}
	if t := b.tasks; t != nil {
		cfg := t.managerConfig()
		s.tasks = &cfg
		s.skipOrphanValidate = t.SkipOrphanValidation
		d.Tasks = &httpapi.Resource{Prefix: cmp.Or(t.Prefix, defaultTasksPrefix), Permissions: t.Permissions.resolve()}
	}
	if m := b.monitoring; m != nil {
		d.Monitoring = &httpapi.Monitoring{Path: cmp.Or(m.Prefix, defaultMetricsPath), ServiceName: cmp.Or(m.ServiceName, info.DisplayName)}
	}
	if c := b.console; c != nil {
		d.Console = &httpapi.Console{Prefix: c.Prefix}
	}
	var errs []error
	if b.auth != nil {
		auth, err := resolveAuth(*b.auth)
		if err != nil {
			errs = append(errs, err)
		}
		d.Auth = auth
	}
	if s.tasks != nil {
		// Tasks never see the service's own secrets: its API keys and its
		// database URL are removed from whatever environment they inherit.
		secrets := slices.Clone(s.tasks.Secrets)
		if d.Auth != nil {
			secrets = append(secrets, d.Auth.Keys...)
		}
		if pgdb.IsURL(b.dbTarget) {
			secrets = append(secrets, b.dbTarget)
			if u, err := url.Parse(b.dbTarget); err == nil && u.User != nil {
				if pw, ok := u.User.Password(); ok && pw != "" {
					secrets = append(secrets, pw)
				}
			}
		}
		s.tasks.Secrets = secrets
	}
	s.http = d
	return s, errs
}

// resolve returns the permissions p points to, or AllPermissions.
func (p *Permissions) resolve() httpapi.Permissions {
	if p == nil {
		p = &AllPermissions
	}
	return httpapi.Permissions{Create: p.Create, Read: p.Read, Update: p.Update, Delete: p.Delete}
}

// healthCheck adapts a check to the HTTP layer, which knows states as
// strings.
func healthCheck(c HealthCheck) httpapi.HealthCheck {
	check := c.Check
	return httpapi.HealthCheck{Name: c.Name, Check: func(ctx context.Context) (string, string, error) {
		st, msg, err := check(ctx)
		return string(st), msg, err
	}}
}

// withDefaults fills the zero fields of a retention policy.
func (r RetentionConfig) withDefaults() RetentionConfig {
	r.Interval = cmp.Or(max(r.Interval, 0), defaultPruneInterval)
	r.BatchSize = cmp.Or(max(r.BatchSize, 0), defaultPruneBatchSize)
	return r
}
