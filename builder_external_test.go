package chapkit_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/labstack/echo/v4"
	"go.uber.org/goleak"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/registry"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func TestBuildErrors(t *testing.T) {
	t.Parallel()
	info := chapkit.ServiceInfo{DisplayName: "Test"}
	tests := []struct {
		name    string
		builder *chapkit.ServiceBuilder
		want    []string
	}{
		{"tasks without artifacts", chapkit.NewServiceBuilder(info).WithJobs(chapkit.JobsConfig{}).WithTasks(registry.New()),
			[]string{"Task execution requires artifacts"}},
		{"tasks without jobs", chapkit.NewServiceBuilder(info).WithArtifacts(testHierarchy).WithTasks(registry.New()),
			[]string{"WithJobs"}},
		{"tasks alone name both", chapkit.NewServiceBuilder(info).WithTasks(registry.New()),
			[]string{"Task execution requires artifacts", "WithJobs"}},
		{"database of the wrong type", chapkit.NewServiceBuilder(info).WithDatabase(123),
			[]string{"Expected str, Database, or None"}},
		{"invalid health check name", chapkit.NewServiceBuilder(info).WithHealth(check("invalid name!", chapkit.Healthy, "", nil)),
			[]string{"Health check name 'invalid name!' contains invalid characters. Only alphanumeric characters, underscores, and hyphens are allowed."}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app, err := tc.builder.Build()
			if err == nil {
				t.Fatalf("Build() = %v, nil; want an error", app)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Build() error = %q, want it to contain %q", err, w)
				}
			}
		})
	}

	t.Run("presence, not order, counts", func(t *testing.T) {
		b := chapkit.NewServiceBuilder(info).WithTasks(registry.New()).WithJobs(chapkit.JobsConfig{}).WithArtifacts(testHierarchy).
			WithHealth(check("valid_name-1", chapkit.Healthy, "", nil), check("çheck", chapkit.Healthy, "", nil))
		if _, err := b.Build(); err != nil {
			t.Errorf("Build() error = %v", err)
		}
	})
}

func TestInjectedDatabase(t *testing.T) {
	t.Parallel()
	db, err := gorm.Open(sqlite.Open(filepath.Join(t.TempDir(), "injected.db")), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	sqlDB.SetMaxOpenConns(1)
	t.Cleanup(func() { sqlDB.Close() })

	app, err := builderFor(t).WithDatabase(db).Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if app.DB() != db {
		t.Errorf("DB() is not the injected handle")
	}
	h := app.Handler()
	job := waitJob(t, h, execute(t, h, shellTask(t, h, "echo injected")))

	var tasks, jobs int64
	db.Table("tasks").Count(&tasks)
	db.Table("jobs").Where("status = ?", "completed").Count(&jobs)
	if tasks != 1 || jobs != 1 {
		t.Errorf("injected database holds %d tasks, %d completed jobs; want 1 and 1 (job %v)", tasks, jobs, job)
	}
	if err := app.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := sqlDB.PingContext(t.Context()); err != nil {
		t.Errorf("the injected database was closed by Shutdown: %v", err)
	}
}

func TestHooks(t *testing.T) {
	t.Parallel()
	var calls []string
	hook := func(name string) chapkit.Hook {
		return func(ctx context.Context, app *chapkit.App) error {
			if app == nil || app.DB() == nil {
				return errors.New("hook without an open app")
			}
			calls = append(calls, name)
			return nil
		}
	}
	app, err := builderFor(t).
		OnStartup(hook("start1")).OnShutdown(hook("stop1")).
		OnStartup(hook("start2")).OnShutdown(hook("stop2")).
		OnStartup(chapkit.SeedTasks(seedTask("01JCSEED0000000000000TASK1", "echo seeded"))).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if len(calls) != 0 {
		t.Fatalf("hooks ran at Build: %v", calls)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"start1", "start2"}, calls); diff != "" {
		t.Errorf("start-up hooks (-want +got):\n%s", diff)
	}
	rec := testkit.Request(t, app.Handler(), http.MethodGet, "/api/v1/tasks", "", "")
	expect(t, rec, http.StatusOK, ctJSON, []any{map[string]any{"id": "01JCSEED0000000000000TASK1", "command": "echo seeded",
		"task_type": "shell", "parameters": nil, "enabled": true, "timeout_seconds": nil}}, ignoreKeys("created_at", "updated_at"))
	if err := app.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"start1", "start2", "stop1", "stop2"}, calls); diff != "" {
		t.Errorf("hooks (-want +got):\n%s", diff)
	}
	if err := app.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown() = %v", err)
	}
	if len(calls) != 4 {
		t.Errorf("second Shutdown ran hooks again: %v", calls)
	}
}

// TestFailingStartupHook: a failing start-up hook aborts Start with its
// error, and must not leave the opened database (and its pool goroutine)
// behind. Not parallel: it checks goroutines.
func TestFailingStartupHook(t *testing.T) {
	before := goleak.IgnoreCurrent()
	boom := errors.New("boom")
	app, err := builderFor(t).OnStartup(func(context.Context, *chapkit.App) error { return boom }).Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); !errors.Is(err, boom) {
		t.Errorf("Start() = %v, want the hook's error", err)
	}
	if err := app.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown() after a failed Start = %v", err)
	}
	goleak.VerifyNone(t, before)
}

func TestCustomRoutes(t *testing.T) {
	t.Parallel()
	app := newApp(t, func(b *chapkit.ServiceBuilder) *chapkit.ServiceBuilder {
		return b.WithRoutes(func(app *chapkit.App) {
			app.Echo().GET("/custom/test", func(c echo.Context) error {
				return c.JSON(http.StatusOK, map[string]string{"message": "custom"})
			})
		})
	})
	expect(t, testkit.Request(t, app.Handler(), http.MethodGet, "/custom/test", "", ""), http.StatusOK, ctJSON, map[string]any{"message": "custom"})
}
