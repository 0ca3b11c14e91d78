// Command function_tasks is the function-task service of chapkit's
// task-execution guide: typed Go functions registered by name, executed
// with the task's parameters, next to a shell task.
//
//	go run ./examples/function_tasks -addr :8000 -db functions.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// SumParams are the parameters of calculate_sum; both are required.
type SumParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

// SumResult is what calculate_sum returns.
type SumResult struct {
	Result    int    `json:"result"`
	Operation string `json:"operation"`
}

func calculateSum(ctx context.Context, p SumParams) (SumResult, error) {
	if err := pause(ctx, 100*time.Millisecond); err != nil {
		return SumResult{}, err
	}
	return SumResult{Result: p.A + p.B, Operation: "sum"}, nil
}

// ProcessParams are the parameters of process_data.
type ProcessParams struct {
	InputText string `json:"input_text"`
	Uppercase bool   `json:"uppercase" default:"false"`
}

// ProcessResult is what process_data returns.
type ProcessResult struct {
	Original  string `json:"original"`
	Processed string `json:"processed"`
	Length    int    `json:"length"`
	Timestamp string `json:"timestamp"`
}

func processData(ctx context.Context, p ProcessParams) (ProcessResult, error) {
	processed := strings.ToLower(p.InputText)
	if p.Uppercase {
		processed = strings.ToUpper(p.InputText)
	}
	return ProcessResult{Original: p.InputText, Processed: processed, Length: utf8.RuneCountInString(processed), Timestamp: now()}, nil
}

// SlowParams are the parameters of slow_computation.
type SlowParams struct {
	Seconds int `json:"seconds" default:"2"`
}

// SlowResult is what slow_computation returns.
type SlowResult struct {
	Completed       bool `json:"completed"`
	DurationSeconds int  `json:"duration_seconds"`
}

// slowComputation waits, but returns at once with the context's error when
// its job is cancelled, deleted, timed out or interrupted.
func slowComputation(ctx context.Context, p SlowParams) (SlowResult, error) {
	if err := pause(ctx, time.Duration(p.Seconds)*time.Second); err != nil {
		return SlowResult{}, err
	}
	return SlowResult{Completed: true, DurationSeconds: p.Seconds}, nil
}

// FailParams are the parameters of failing_task.
type FailParams struct {
	ShouldFail bool `json:"should_fail" default:"true"`
}

func failingTask(ctx context.Context, p FailParams) (map[string]bool, error) {
	if p.ShouldFail {
		return nil, registry.NewError("ValueError", "This task was designed to fail")
	}
	return map[string]bool{"success": true}, nil
}

// CountDeps is injected into query_task_count: the job's database handle.
type CountDeps struct {
	DB *gorm.DB
}

// CountResult is what query_task_count returns.
type CountResult struct {
	TotalTasks      int64  `json:"total_tasks"`
	Timestamp       string `json:"timestamp"`
	InjectedSession bool   `json:"injected_session"`
}

func queryTaskCount(ctx context.Context, _ struct{}, d CountDeps) (CountResult, error) {
	var n int64
	if err := d.DB.Table("tasks").Count(&n).Error; err != nil {
		return CountResult{}, err
	}
	return CountResult{TotalTasks: n, Timestamp: now(), InjectedSession: d.DB != nil}, nil
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func now() string { return time.Now().UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func main() {
	addr := flag.String("addr", ":8000", "listen address")
	db := flag.String("db", "", "database: a SQLite file (empty: in memory, lost at exit) or a postgres:// URL shared by several replicas")
	rescueAfter := flag.Duration("rescue-after", 15*time.Second, "heartbeat age after which a replica counts as dead and its running jobs are rescued")
	migrate := flag.Bool("migrate", false, "bring the database schema up to date, then exit")
	flag.Parse()
	logger := chapkit.LoggerFromEnv() // LOG_FORMAT (console|json), LOG_LEVEL

	reg := registry.New()
	registry.MustRegister(reg, "calculate_sum", calculateSum)
	registry.MustRegister(reg, "process_data", processData)
	registry.MustRegister(reg, "slow_computation", slowComputation)
	registry.MustRegister(reg, "failing_task", failingTask)
	registry.MustRegisterWith(reg, "query_task_count", queryTaskCount)

	params := func(s string) json.RawMessage { return json.RawMessage(s) }
	b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{
		DisplayName: "Python Task Execution Service",
		Version:     "1.0.0",
		Summary:     "Example service demonstrating Python function execution via TaskRegistry",
		Description: "Go functions registered by name run as tasks; results and errors are kept as artifacts.",
	}).
		WithDatabase(*db).
		WithLogger(logger).
		WithMonitoring().
		WithLogging().
		WithDocs().
		WithConsole().     // the web console at /console
		WithAuthFromEnv(). // on only when CHAPKIT_API_KEYS or CHAPKIT_API_KEY_FILE is set
		WithHealth().
		WithArtifacts(artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}).
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 3, RescueAfter: *rescueAfter}).
		WithSystem().
		WithTasks(reg).
		OnStartup(chapkit.SeedTasks(
			task.In{ID: "01JCSEED0000000000000PYTH1", Command: "calculate_sum", TaskType: task.TypePython, Parameters: params(`{"a": 10, "b": 32}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH2", Command: "process_data", TaskType: task.TypePython, Parameters: params(`{"input_text": "Hello World", "uppercase": true}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH3", Command: "slow_computation", TaskType: task.TypePython, Parameters: params(`{"seconds": 1}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH4", Command: "failing_task", TaskType: task.TypePython, Parameters: params(`{"should_fail": true}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH5", Command: `echo "This is a shell task"`, TaskType: task.TypeShell, Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH6", Command: "process_data", TaskType: task.TypePython, Parameters: params(`{"input_text": "Disabled", "uppercase": false}`), Enabled: false},
			task.In{ID: "01JCSEED0000000000000PYTH7", Command: "query_task_count", TaskType: task.TypePython, Parameters: params(`{}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000PYTH8", Command: "nonexistent_function", TaskType: task.TypePython, Parameters: params(`{}`), Enabled: true},
		))
	app, err := b.Build()
	if err != nil {
		logger.Error("build service", "error", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *migrate {
		if err := app.Migrate(ctx); err != nil {
			logger.Error("migrate database", "error", err)
			os.Exit(1)
		}
		logger.Info("database schema is up to date")
		return
	}
	if err := app.Run(ctx, *addr); err != nil {
		logger.Error("service stopped", "error", err)
		os.Exit(1)
	}
}
