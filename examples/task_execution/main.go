// Command task_execution is the shell-task service of chapkit's
// task-execution guide: five seeded shell tasks, executed as durable jobs
// whose output is kept as artifacts.
//
//	go run ./examples/task_execution -addr :8000 -db tasks.db
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

func main() {
	addr := flag.String("addr", ":8000", "listen address")
	db := flag.String("db", "", "database: a SQLite file (empty: in memory, lost at exit) or a postgres:// URL shared by several replicas")
	rescueAfter := flag.Duration("rescue-after", 15*time.Second, "heartbeat age after which a replica counts as dead and its running jobs are rescued")
	migrate := flag.Bool("migrate", false, "bring the database schema up to date, then exit")
	flag.Parse()
	logger := chapkit.LoggerFromEnv() // LOG_FORMAT (console|json), LOG_LEVEL

	b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{
		DisplayName: "Task Execution Service",
		Version:     "1.0.0",
		Summary:     "Example service demonstrating task execution with artifact-based result storage",
		Description: "Shell tasks stored as templates, executed as durable jobs, results kept as artifacts.",
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
		WithTasks(registry.New()).
		OnStartup(chapkit.SeedTasks(
			task.In{ID: "01JCSEED0000000000000TASK1", Command: "ls -la /tmp", Enabled: true},
			task.In{ID: "01JCSEED0000000000000TASK2", Command: `echo "Hello from task execution!"`, Enabled: true},
			task.In{ID: "01JCSEED0000000000000TASK3", Command: "date", Enabled: true},
			task.In{ID: "01JCSEED0000000000000TASK4", Command: `python3 -c "print(\"Python task execution works!\")"`, Enabled: true},
			task.In{ID: "01JCSEED0000000000000TASK5", Command: "ls /nonexistent/directory", Enabled: true},
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
