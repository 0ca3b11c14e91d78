package chapkit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"

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
