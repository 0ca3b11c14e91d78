package chapkit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// The quick start of the README: a service with shell tasks, one executed
// through the Go API (the REST API does the same over HTTP).
func Example_quickstart() {
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Quick start"}).
		WithDatabase(""). // in memory; pass a file path to keep data across restarts
		WithHealth().
		WithArtifacts(artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 3}).
		WithTasks(registry.New()).
		Build()
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	if err := app.Start(ctx); err != nil { // then serve app.Handler(), or use app.Run(ctx, ":8000")
		log.Fatal(err)
	}
	defer app.Shutdown(ctx)

	t, err := app.Tasks().Create(ctx, task.In{Command: "echo 'Hello World'", TaskType: task.TypeShell, Enabled: true})
	if err != nil {
		log.Fatal(err)
	}
	jobID, err := app.Tasks().Execute(ctx, t.ID)
	if err != nil {
		log.Fatal(err)
	}
	j, err := app.Scheduler().Wait(ctx, jobID)
	if err != nil {
		log.Fatal(err)
	}
	art, err := app.Artifacts().Get(ctx, *j.ArtifactID)
	if err != nil {
		log.Fatal(err)
	}
	var out struct {
		Stdout   string `json:"stdout"`
		ExitCode int    `json:"exit_code"`
	}
	if err := json.Unmarshal(art.Data, &out); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, exit code %d: %q\n", j.Status, out.ExitCode, out.Stdout)
	// Output: completed, exit code 0: "Hello World\n"
}

// SumParams are decoded from a task's parameters: {"a": 10, "b": 32}.
type SumParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

// Registering a typed function: a wrong signature does not compile, and a
// task with task_type "python" and command "calculate_sum" calls it.
func Example_functionTask() {
	reg := registry.New()
	registry.MustRegister(reg, "calculate_sum", func(ctx context.Context, p SumParams) (map[string]any, error) {
		return map[string]any{"result": p.A + p.B, "operation": "sum"}, nil
	})
	app := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Functions"}).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).
		WithJobs(chapkit.JobsConfig{}).
		WithTasks(reg).
		MustBuild()
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer app.Shutdown(ctx)

	t, _ := app.Tasks().Create(ctx, task.In{Command: "calculate_sum", TaskType: task.TypePython,
		Parameters: json.RawMessage(`{"a": 10, "b": 32}`), Enabled: true})
	jobID, _ := app.Tasks().Execute(ctx, t.ID)
	j, _ := app.Scheduler().Wait(ctx, jobID)
	art, _ := app.Artifacts().Get(ctx, *j.ArtifactID)
	var data struct {
		Result json.RawMessage `json:"result"`
		Error  any             `json:"error"`
	}
	_ = json.Unmarshal(art.Data, &data)
	fmt.Println(string(data.Result), data.Error)
	// Output: {"operation":"sum","result":42} <nil>
}

// The README's Go quick start, compiled (it serves until interrupted, so
// it has no output to check).
func Example_serve() {
	hierarchy := artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Quick start"}).
		WithDatabase("tasks.db"). // "" keeps everything in memory
		WithHealth().
		WithArtifacts(hierarchy).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 3}).
		WithTasks(registry.New()).
		Build()
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log.Fatal(app.Run(ctx, ":8000")) // serves until ctx is done, then drains
}

// The README's function registrations, compiled and run.
func Example_registerFunctions() {
	type SumParams struct {
		A int `json:"a"` // required
		B int `json:"b"` // required
	}
	type FailParams struct {
		ShouldFail bool `json:"should_fail" default:"true"` // optional, default true
	}
	type CountDeps struct {
		DB *gorm.DB // injected by type: a handle bound to the job's context
	}

	reg := registry.New()
	registry.MustRegister(reg, "calculate_sum", func(ctx context.Context, p SumParams) (map[string]any, error) {
		return map[string]any{"result": p.A + p.B, "operation": "sum"}, nil
	})
	registry.MustRegister(reg, "failing_task", func(ctx context.Context, p FailParams) (map[string]bool, error) {
		if p.ShouldFail {
			return nil, registry.NewError("ValueError", "This task was designed to fail")
		}
		return map[string]bool{"success": true}, nil
	})
	registry.MustRegisterWith(reg, "query_task_count", func(ctx context.Context, _ struct{}, d CountDeps) (map[string]any, error) {
		var n int64
		err := d.DB.Table("tasks").Count(&n).Error
		return map[string]any{"total_tasks": n, "injected_session": true}, err
	})

	app := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Functions"}).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).
		WithJobs(chapkit.JobsConfig{}).
		WithTasks(reg).
		MustBuild()
	ctx := context.Background()
	if err := app.Start(ctx); err != nil {
		log.Fatal(err)
	}
	defer app.Shutdown(ctx)
	for _, name := range []string{"failing_task", "query_task_count"} {
		t, _ := app.Tasks().Create(ctx, task.In{Command: name, TaskType: task.TypePython, Enabled: true})
		jobID, _ := app.Tasks().Execute(ctx, t.ID)
		j, _ := app.Scheduler().Wait(ctx, jobID)
		art, _ := app.Artifacts().Get(ctx, *j.ArtifactID)
		var data struct {
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(art.Data, &data)
		if data.Error != nil {
			fmt.Printf("%s: %s: %s\n", name, data.Error.Type, data.Error.Message)
		} else {
			fmt.Printf("%s: %s\n", name, data.Result)
		}
	}
	// Output:
	// failing_task: ValueError: This task was designed to fail
	// query_task_count: {"injected_session":true,"total_tasks":2}
}
