package chapkit_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

// ModelDir is a host-program value provided to task functions by type.
type ModelDir string

// Clock is provided nowhere; functions may take it optionally.
type Clock interface{ Now() time.Time }

type deps struct {
	DB        *gorm.DB
	Database  *chapkit.Database
	Artifacts *artifact.Manager
	Scheduler *job.Scheduler
	Dir       ModelDir
	Clock     Clock `inject:"optional"`
}

func functionApp(t *testing.T, db string, reg *registry.Registry, configure ...func(*chapkit.ServiceBuilder)) *chapkit.App {
	t.Helper()
	b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "functions"}).
		WithDatabase(db).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 8}).
		WithTasks(reg)
	for _, f := range configure {
		f(b)
	}
	app, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { app.Shutdown(context.Background()) })
	return app
}

// runFunction runs the function task once and returns its job and artifact data.
func runFunction(t *testing.T, app *chapkit.App, command string, params string) (*job.Job, map[string]json.RawMessage) {
	t.Helper()
	ctx := t.Context()
	in := task.In{Command: command, TaskType: task.TypePython, Enabled: true}
	if params != "" {
		in.Parameters = json.RawMessage(params)
	}
	tk, err := app.Tasks().Create(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	id, err := app.Tasks().Execute(ctx, tk.ID)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	j, err := app.Scheduler().Wait(wctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if j.ArtifactID == nil {
		return j, nil
	}
	art, err := app.Artifacts().Get(ctx, *j.ArtifactID)
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]json.RawMessage
	if err := json.Unmarshal(art.Data, &data); err != nil {
		t.Fatal(err)
	}
	return j, data
}

func TestInjectionByType(t *testing.T) {
	reg := registry.New()
	registry.MustRegisterWith(reg, "inspect", func(ctx context.Context, _ struct{}, d deps) (map[string]any, error) {
		var n int64
		if err := d.DB.Table("tasks").Count(&n).Error; err != nil {
			return nil, err
		}
		return map[string]any{
			"tasks": n, "database": d.Database != nil && d.Database.DB != nil,
			"artifacts": d.Artifacts != nil && d.Artifacts.Hierarchy().Name == "task_executions",
			"scheduler": d.Scheduler != nil, "dir": string(d.Dir), "clock": d.Clock != nil,
		}, nil
	})
	app := functionApp(t, filepath.Join(t.TempDir(), "f.db"), reg, func(b *chapkit.ServiceBuilder) {
		chapkit.Provide(b, ModelDir("/models"))
	})
	j, data := runFunction(t, app, "inspect", "{}")
	if j.Status != job.StatusCompleted {
		t.Fatalf("job %+v", j)
	}
	want := `{"artifacts":true,"clock":false,"database":true,"dir":"/models","scheduler":true,"tasks":1}`
	if diff := cmp.Diff(want, string(data["result"])); diff != "" {
		t.Errorf("injected values (-want +got):\n%s", diff)
	}
}

func TestBuildFailsForMissingInjection(t *testing.T) {
	reg := registry.New()
	registry.MustRegisterWith(reg, "needs_dir", func(ctx context.Context, _ struct{}, d struct{ Dir ModelDir }) (int, error) {
		return 0, nil
	})
	_, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "x"}).
		WithArtifacts(artifact.Hierarchy{Name: "x"}).WithJobs(chapkit.JobsConfig{}).WithTasks(reg).Build()
	if err == nil || !strings.Contains(err.Error(), "needs_dir") || !strings.Contains(err.Error(), "ModelDir") {
		t.Fatalf("Build() error = %v, want one naming needs_dir and ModelDir", err)
	}
}

func TestRegistrationAfterBuildFails(t *testing.T) {
	reg := registry.New()
	registry.MustRegister(reg, "first", func(ctx context.Context, _ struct{}) (int, error) { return 1, nil })
	functionApp(t, "", reg)
	err := registry.Register(reg, "late", func(ctx context.Context, _ struct{}) (int, error) { return 2, nil })
	if !errors.Is(err, registry.ErrFrozen) {
		t.Fatalf("Register after Build = %v, want ErrFrozen", err)
	}
}

type bigParams struct {
	Size int `json:"size"`
}

func TestFunctionFaults(t *testing.T) {
	reg := registry.New()
	registry.MustRegister(reg, "panics", func(ctx context.Context, _ struct{}) (int, error) { panic("kaboom") })
	registry.MustRegister(reg, "huge", func(ctx context.Context, p bigParams) (string, error) {
		return strings.Repeat("x", p.Size), nil
	})
	registry.MustRegister(reg, "channel", func(ctx context.Context, _ struct{}) (chan int, error) { return make(chan int), nil })
	registry.MustRegister(reg, "typed", func(ctx context.Context, p bigParams) (int, error) { return p.Size, nil })
	app := functionApp(t, filepath.Join(t.TempDir(), "f.db"), reg)

	t.Run("panic is an error artifact", func(t *testing.T) {
		j, data := runFunction(t, app, "panics", "")
		var e registry.CallError
		_ = json.Unmarshal(data["error"], &e)
		if j.Status != job.StatusCompleted || e.Type != "panic" || e.Message != "kaboom" || e.Traceback == "" || string(data["result"]) != "null" {
			t.Fatalf("job %s, artifact %s", j.Status, data)
		}
	})
	t.Run("huge result is stored", func(t *testing.T) {
		_, data := runFunction(t, app, "huge", `{"size": 3000000}`)
		if len(data["result"]) != 3000002 {
			t.Fatalf("result of %d bytes, want the 3 MB string", len(data["result"]))
		}
	})
	t.Run("non-JSON result is described", func(t *testing.T) {
		_, data := runFunction(t, app, "channel", "")
		var meta map[string]string
		_ = json.Unmarshal(data["result"], &meta)
		if meta["_type"] != "chan int" || meta["_serialization_error"] != "Value is not JSON-serializable." {
			t.Fatalf("result %s", data["result"])
		}
	})
	t.Run("wrong parameter type is an error artifact", func(t *testing.T) {
		j, data := runFunction(t, app, "typed", `{"size": "large"}`)
		var e registry.CallError
		_ = json.Unmarshal(data["error"], &e)
		if j.Status != job.StatusCompleted || e.Type != "TypeError" {
			t.Fatalf("job %s, artifact %s", j.Status, data)
		}
	})
	t.Run("unknown parameter is an error artifact", func(t *testing.T) {
		_, data := runFunction(t, app, "typed", `{"size": 1, "colour": "red"}`)
		var e registry.CallError
		_ = json.Unmarshal(data["error"], &e)
		if e.Type != "TypeError" || e.Message != "unexpected parameter 'colour'" {
			t.Fatalf("error %s", data["error"])
		}
	})
}

func TestFunctionIgnoringCancellation(t *testing.T) {
	reg := registry.New()
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	registry.MustRegister(reg, "stubborn", func(ctx context.Context, _ struct{}) (string, error) {
		started <- struct{}{}
		<-release // ignores ctx on purpose
		return "done anyway", nil
	})
	app := functionApp(t, filepath.Join(t.TempDir(), "f.db"), reg)
	ctx := t.Context()
	tk, _ := app.Tasks().Create(ctx, task.In{Command: "stubborn", TaskType: task.TypePython, Enabled: true})
	id, _ := app.Tasks().Execute(ctx, tk.ID)
	<-started
	j, err := app.Scheduler().Cancel(ctx, id)
	if err != nil || j.Status != job.StatusCanceled {
		t.Fatalf("Cancel = %+v, %v", j, err)
	}
	close(release)
	// The late return stores nothing: the record stays canceled.
	testkit.Eventually(t, 5*time.Second, "the stubborn function's goroutine to return", func() bool {
		pending, running := app.Scheduler().Counts()
		return pending == 0 && running == 0
	})
	got, _ := app.Scheduler().Get(ctx, id)
	var arts int64
	app.DB().Model(&artifact.Artifact{}).Count(&arts)
	if got.Status != job.StatusCanceled || got.ArtifactID != nil || arts != 0 {
		t.Fatalf("after the late return: %+v with %d artifacts", got, arts)
	}
}

func TestConcurrentExecutionsOfOneFunctionTask(t *testing.T) {
	reg := registry.New()
	registry.MustRegister(reg, "sum", func(ctx context.Context, p struct {
		A int `json:"a"`
		B int `json:"b"`
	}) (int, error) {
		return p.A + p.B, nil
	})
	app := functionApp(t, filepath.Join(t.TempDir(), "f.db"), reg)
	ctx := t.Context()
	tk, _ := app.Tasks().Create(ctx, task.In{Command: "sum", TaskType: task.TypePython, Parameters: json.RawMessage(`{"a":2,"b":3}`), Enabled: true})
	const n = 48
	var wg sync.WaitGroup
	arts := make(chan string, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := app.Tasks().Execute(ctx, tk.ID)
			if err != nil {
				t.Error(err)
				return
			}
			j, err := app.Scheduler().Wait(ctx, id)
			if err != nil || j.Status != job.StatusCompleted {
				t.Errorf("job %+v, %v", j, err)
				return
			}
			arts <- *j.ArtifactID
		}()
	}
	wg.Wait()
	close(arts)
	seen := map[string]bool{}
	for id := range arts {
		seen[id] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct artifacts for %d executions", len(seen), n)
	}
}

func TestOrphanValidationAtStartup(t *testing.T) {
	db := filepath.Join(t.TempDir(), "orphans.db")
	reg := registry.New()
	registry.MustRegister(reg, "present", func(ctx context.Context, _ struct{}) (int, error) { return 1, nil })
	app := functionApp(t, db, reg)
	ctx := t.Context()
	kept, _ := app.Tasks().Create(ctx, task.In{Command: "present", TaskType: task.TypePython, Enabled: true})
	gone, _ := app.Tasks().Create(ctx, task.In{Command: "removed_later", TaskType: task.TypePython, Enabled: true})
	shell, _ := app.Tasks().Create(ctx, task.In{Command: "removed_later", TaskType: task.TypeShell, Enabled: true})
	if err := app.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// The task table still names removed_later, which the next build of
	// the program no longer registers: start-up disables it.
	app2 := functionApp(t, db, reg)
	for id, want := range map[string]bool{kept.ID: true, gone.ID: false, shell.ID: true} {
		got, err := app2.Tasks().Get(ctx, id)
		if err != nil || got.Enabled != want {
			t.Errorf("task %s enabled = %v (%v), want %v", id, got.Enabled, err, want)
		}
	}
	if n, err := chapkit.ValidateOrphanedTasks(ctx, app2); n != 1 || err != nil {
		t.Errorf("ValidateOrphanedTasks = %d, %v; want 1 (already disabled orphans count again)", n, err)
	}
	if _, err := app2.Tasks().Execute(ctx, gone.ID); err == nil || err.Error() == "" {
		t.Errorf("executing the disabled orphan: %v, want an error", err)
	}
}
