package chapkit

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/inject"
	"github.com/chapkit-go/chapkit/internal/httpapi"
	"github.com/chapkit-go/chapkit/internal/livelog"
	"github.com/chapkit-go/chapkit/internal/pgdb"
	"github.com/chapkit-go/chapkit/internal/schema"
	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// Database is the app's database handle as task functions inject it.
type Database struct {
	// DB is the app-wide handle; bind it to a context before use.
	DB *gorm.DB
}

// App is a built chapkit service. Start runs the start-up sequence,
// Handler serves HTTP, Shutdown drains and stops. It is safe for
// concurrent use; it cannot be started again after Shutdown.
type App struct {
	s         settings // resolved by Build, never modified
	log       *slog.Logger
	http      *httpapi.Server
	registry  *registry.Registry
	container *inject.Container

	// Set by Start, read by handlers after Start returned.
	db     *gorm.DB
	ownsDB bool
	// pgURL is the connection string of a PostgreSQL database, for the
	// scheduler's notification listener; "" on SQLite.
	pgURL     string
	sched     *job.Scheduler
	tasks     *task.Manager
	timetable *task.Timetable // fires schedules and starts retries
	relay     *livelog.Relay  // live output across nodes (PostgreSQL only)
	artifacts *artifact.Manager
	// live carries the output of shell jobs running in this process.
	live *livelog.Hub

	mu        sync.Mutex
	started   bool
	stopped   bool
	server    *http.Server
	pruneStop chan struct{} // closes the background pruner
	pruneDone chan struct{}
	connsMu   sync.Mutex
	newConns  map[net.Conn]struct{} // connections that have not sent a request yet
}

func newApp(b *ServiceBuilder, s settings) *App {
	a := &App{s: s, log: s.log, registry: b.registry, container: b.container.Clone(), live: livelog.NewHub()}
	a.provideBuiltins()
	a.http = httpapi.New(s.http)
	for _, f := range b.routes {
		f(a)
	}
	a.http.MountOps()
	return a
}

// provideBuiltins makes the framework's values injectable. They resolve
// per execution, because they exist only once Start opened the database;
// the *gorm.DB is bound to the job's context, so a function's queries end
// with its job.
func (a *App) provideBuiltins() {
	c := a.container
	_ = inject.ProvideFunc[*gorm.DB](c, func(ctx context.Context) (*gorm.DB, error) {
		return a.db.WithContext(ctx), nil
	})
	_ = inject.ProvideFunc[*Database](c, func(ctx context.Context) (*Database, error) {
		return &Database{DB: a.db}, nil
	})
	if a.s.hierarchy != nil {
		_ = inject.ProvideFunc[*artifact.Manager](c, func(ctx context.Context) (*artifact.Manager, error) {
			return a.artifacts, nil
		})
	}
	if a.s.jobs != nil {
		_ = inject.ProvideFunc[*job.Scheduler](c, func(ctx context.Context) (*job.Scheduler, error) {
			return a.sched, nil
		})
	}
}

// Handler returns the app's HTTP handler. Call Start first.
func (a *App) Handler() http.Handler { return a.http.Echo() }

// Echo returns the underlying Echo instance, for custom routes and
// middleware. This is the only place the root package exposes Echo.
func (a *App) Echo() *echo.Echo { return a.http.Echo() }

// DB returns the database handle; nil before Start.
func (a *App) DB() *gorm.DB { return a.db }

// Scheduler returns the job scheduler; nil without WithJobs or before Start.
func (a *App) Scheduler() *job.Scheduler { return a.sched }

// Tasks returns the task manager; nil without WithTasks or before Start.
func (a *App) Tasks() *task.Manager { return a.tasks }

// Artifacts returns the artifact manager; nil without WithArtifacts or
// before Start.
func (a *App) Artifacts() *artifact.Manager { return a.artifacts }

// Registry returns the function registry of the tasks; nil without WithTasks.
func (a *App) Registry() *registry.Registry { return a.registry }

// Logger returns the app's logger.
func (a *App) Logger() *slog.Logger { return a.log }

// Start runs the start-up sequence: open the database and create its
// schema, recover the jobs a previous process left (docs/jobs.md), run
// the start-up hooks, then disable "python" tasks whose function is not
// registered. It does not listen; see [App.ListenAndServe] and [App.Run].
// A failing step aborts Start, undoes what it did and is returned.
func (a *App) Start(ctx context.Context) (err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started || a.stopped {
		return errors.New("chapkit: app already started")
	}
	defer func() {
		if err != nil {
			a.abortStart()
		}
	}()
	if err := a.openDatabase(ctx); err != nil {
		return err
	}
	if a.s.hierarchy != nil || a.s.tasks != nil || a.s.jobs != nil {
		applied, err := schema.Migrate(ctx, a.db)
		if err != nil {
			return err
		}
		if len(applied) > 0 {
			a.log.Info("database migrated", "versions", applied)
		}
	}
	if a.s.hierarchy != nil {
		a.artifacts = artifact.NewManager(a.db, a.s.hierarchy)
	}
	if a.s.jobs != nil {
		cfg := *a.s.jobs
		cfg.Logger, cfg.Observer = a.log, a.http.JobObserver()
		if cfg.Listener == nil && a.pgURL != "" {
			cfg.Listener = pgdb.NewListener(a.pgURL, a.log)
		}
		if cfg.KillLeftovers == nil {
			cfg.KillLeftovers = shell.KillLeftovers
		}
		a.sched = job.New(a.db, cfg)
	}
	if a.s.tasks != nil {
		a.log.Info("process containment of shell tasks", "mechanism", shell.Mechanism(), "why_not_cgroup2", shell.MechanismReason())
	}
	if a.s.tasks != nil {
		cfg := *a.s.tasks
		cfg.Jobs, cfg.Artifacts, cfg.Registry, cfg.Container, cfg.Logger = a.sched, a.artifacts, a.registry, a.container, a.log
		cfg.Live = a.live
		a.tasks = task.NewManager(a.db, cfg)
		if err := a.sched.Handle(task.JobKind, a.tasks.RunJob); err != nil {
			return err
		}
	}
	for kind, h := range a.s.handlers {
		if err := a.sched.Handle(kind, h); err != nil {
			return err
		}
	}
	a.http.Attach(httpapi.Managers{DB: a.db, Scheduler: a.sched, Tasks: a.tasks, Artifacts: a.artifacts, Live: a.live})
	if a.sched != nil {
		if err := a.sched.Start(ctx); err != nil {
			return err
		}
	}
	if a.sched != nil && a.pgURL != "" {
		a.relay = livelog.NewRelay(livelog.RelayConfig{Node: a.sched.NodeID(), Hub: a.live, Jobs: a.sched, Logger: a.log,
			Bus: pgdb.NewBus(a.db, a.pgURL, livelog.Channel, a.log)})
		a.relay.Start()
		a.live.SetRemote(a.relay)
	}
	for i, h := range a.s.startup {
		if err := h(ctx, a); err != nil {
			return fmt.Errorf("chapkit: start-up hook %d: %w", i+1, err)
		}
	}
	if a.tasks != nil && !a.s.skipOrphanValidate {
		if _, err := a.tasks.ValidateOrphans(ctx, a.registry); err != nil {
			return fmt.Errorf("chapkit: orphan validation: %w", err)
		}
	}
	if a.tasks != nil && a.sched != nil {
		a.timetable = task.NewTimetable(a.tasks, a.sched, task.TimetableConfig{
			Now: a.s.tasks.Now, PollInterval: a.s.jobs.PollInterval, Logger: a.log})
		a.timetable.Start()
	}
	if a.s.retention != nil {
		a.pruneStop, a.pruneDone = make(chan struct{}), make(chan struct{})
		go a.runPruner(a.pruneStop, a.pruneDone)
	}
	a.started = true
	return nil
}

// abortStart undoes what a failed Start did: the scheduler stops (it
// drains nothing yet, since no hook finished) and a database the app
// opened is closed, so a failed Start leaks no goroutine or file.
func (a *App) abortStart() {
	a.stopped = true
	if a.sched != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if a.timetable != nil {
			a.timetable.Stop()
		}
		if err := a.sched.Stop(ctx); err != nil {
			a.log.Warn("stop scheduler after failed start", "error", err)
		}
	}
	if a.relay != nil {
		a.relay.Stop()
	}
	if a.ownsDB && a.db != nil {
		if sqlDB, err := a.db.DB(); err == nil {
			_ = sqlDB.Close()
		}
	}
}

func (a *App) openDatabase(ctx context.Context) error {
	d := a.s.db
	switch {
	case d.handle != nil:
		a.db = d.handle
	case d.dialect != nil:
		db, err := gorm.Open(d.dialect, pgdb.Options(nil))
		if err != nil {
			return fmt.Errorf("chapkit: open database: %w", err)
		}
		a.db, a.ownsDB = db, true
	case pgdb.IsURL(d.target):
		db, err := pgdb.Open(d.target, d.postgres)
		if err != nil {
			return fmt.Errorf("chapkit: %w", err)
		}
		a.db, a.ownsDB = db, true
	default:
		db, err := sqlitedb.Open(d.target, d.sqlite)
		if err != nil {
			return fmt.Errorf("chapkit: %w", err)
		}
		a.db, a.ownsDB = db, true
	}
	if a.db.Dialector.Name() == "postgres" {
		a.pgURL = cmp.Or(pgdb.DSNOf(a.db.Dialector), d.target)
	}
	return a.db.WithContext(ctx).Exec("SELECT 1").Error
}

// Migrate opens the database when Start has not, and brings its schema to
// this release: it creates missing tables and columns and applies the
// numbered migrations not yet recorded (docs/scaling-out.md). Several
// replicas may run it at the same moment; one applies each step and the
// others wait. Start runs it too, so calling it is needed only to migrate
// ahead of a deployment (the examples' -migrate flag). A database opened
// here is closed again unless Start runs later.
func (a *App) Migrate(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	opened := false
	if a.db == nil {
		if err := a.openDatabase(ctx); err != nil {
			return err
		}
		opened = true
	}
	_, err := schema.Migrate(ctx, a.db)
	if opened && a.ownsDB {
		if sqlDB, derr := a.db.DB(); derr == nil {
			_ = sqlDB.Close()
		}
		a.db, a.ownsDB, a.pgURL = nil, false, ""
	}
	return err
}

// ValidateOrphanedTasks disables every "python" task whose function is not
// registered and returns how many there are. It returns 0
// for an app without tasks or before Start.
func ValidateOrphanedTasks(ctx context.Context, a *App) (int, error) {
	if a == nil || a.tasks == nil {
		return 0, nil
	}
	return a.tasks.ValidateOrphans(ctx, a.registry)
}

// ListenAndServe serves HTTP on addr until Shutdown. It returns nil after
// a Shutdown, like http.ErrServerClosed.
func (a *App) ListenAndServe(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return a.Serve(ln)
}

// Serve serves HTTP on ln until Shutdown.
func (a *App) Serve(ln net.Listener) error {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		_ = ln.Close()
		return errors.New("chapkit: app is shut down")
	}
	srv := &http.Server{Handler: a.http.Echo(), ReadHeaderTimeout: 30 * time.Second, ConnState: a.trackConn}
	a.server = srv
	a.mu.Unlock()
	a.log.Info("serving", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Run starts the app, serves addr, and shuts down (draining, see
// [App.Shutdown]) when ctx is done. It returns after the shutdown; a drain that ran into
// its deadline is logged, not returned, since interrupted jobs are recorded.
func (a *App) Run(ctx context.Context, addr string) error {
	if err := a.Start(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = a.Shutdown(context.Background())
		return err
	}
	served := make(chan error, 1)
	go func() { served <- a.Serve(ln) }()
	select {
	case err := <-served:
		_ = a.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	if err := a.Shutdown(context.Background()); err != nil {
		a.log.Warn("shutdown", "error", err)
	}
	return <-served
}

// Shutdown drains and stops the app in this order: refuse new executions
// (503) and close SSE streams; stop the scheduler, letting running jobs
// finish until the drain deadline; stop the HTTP server; run the shutdown
// hooks; close the database if the app opened it. It is idempotent and a
// no-op before Start; it returns ctx's error if ctx ends first.
func (a *App) Shutdown(ctx context.Context) error {
	a.mu.Lock()
	if !a.started || a.stopped {
		a.mu.Unlock()
		return nil
	}
	a.stopped = true
	srv := a.server
	a.mu.Unlock()

	a.http.Drain()
	var errs []error
	if a.timetable != nil {
		a.timetable.Stop() // no tick or retry is promoted while draining
	}
	// The scheduler drains before the server stops, not after: while
	// running jobs finish, clients can still read their status and get the
	// documented 503 from $execute instead of a refused connection.
	if a.sched != nil {
		if err := a.sched.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if a.relay != nil {
		a.relay.Stop() // after the drain, so the ends of relayed output are sent
	}
	if srv != nil {
		if err := a.stopServer(ctx, srv); err != nil {
			errs = append(errs, err)
		}
	}
	if a.pruneStop != nil {
		close(a.pruneStop)
		<-a.pruneDone
	}
	for i, h := range a.s.shutdown {
		if err := h(ctx, a); err != nil {
			errs = append(errs, fmt.Errorf("chapkit: shutdown hook %d: %w", i+1, err))
		}
	}
	if a.ownsDB {
		if sqlDB, err := a.db.DB(); err == nil {
			if err := sqlDB.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// trackConn remembers connections that have not sent a request yet.
func (a *App) trackConn(c net.Conn, st http.ConnState) {
	a.connsMu.Lock()
	defer a.connsMu.Unlock()
	if a.newConns == nil {
		a.newConns = map[net.Conn]struct{}{}
	}
	if st == http.StateNew {
		a.newConns[c] = struct{}{}
	} else {
		delete(a.newConns, c)
	}
}

// stopServer shuts the server down gracefully. net/http waits up to five
// seconds for a connection that was opened but has sent no request (clients
// open spare ones); such a connection carries no work, so it is closed at
// once instead of holding the exit of a drained service.
func (a *App) stopServer(ctx context.Context, srv *http.Server) error {
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(ctx) }()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		case <-tick.C:
			a.connsMu.Lock()
			for c := range a.newConns {
				_ = c.Close()
				delete(a.newConns, c)
			}
			a.connsMu.Unlock()
		}
	}
}
