// Command readonly_tasks is a service whose tasks can be read and executed
// but not created, changed or deleted over HTTP: the tasks it seeds at
// start-up are the only ones there are.
//
//	go run ./examples/readonly_tasks -addr :8000 -db readonly.db
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/registry"
	"github.com/chapkit-go/chapkit/task"
)

// HealthResult is what health_check returns.
type HealthResult struct {
	Status string   `json:"status"`
	Checks []string `json:"checks"`
}

func healthCheck(ctx context.Context, _ struct{}) (HealthResult, error) {
	if err := pause(ctx, 100*time.Millisecond); err != nil {
		return HealthResult{}, err
	}
	return HealthResult{Status: "healthy", Checks: []string{"database", "scheduler", "artifacts"}}, nil
}

// CleanupParams are the parameters of cleanup_temp_files.
type CleanupParams struct {
	OlderThanDays int `json:"older_than_days" default:"7"`
}

// CleanupResult is what cleanup_temp_files returns.
type CleanupResult struct {
	Cleaned  int    `json:"cleaned"`
	Criteria string `json:"criteria"`
}

// cleanupTempFiles only pretends: nothing is deleted.
func cleanupTempFiles(ctx context.Context, p CleanupParams) (CleanupResult, error) {
	if err := pause(ctx, 200*time.Millisecond); err != nil {
		return CleanupResult{}, err
	}
	return CleanupResult{Cleaned: 42, Criteria: fmt.Sprintf("older than %d days", p.OlderThanDays)}, nil
}

// BackupParams are the parameters of backup_database.
type BackupParams struct {
	Destination string `json:"destination" default:"\"/backups\""`
}

// BackupResult is what backup_database returns.
type BackupResult struct {
	Success     bool   `json:"success"`
	Destination string `json:"destination"`
	SizeMB      int    `json:"size_mb"`
}

// backupDatabase only pretends: nothing is copied.
func backupDatabase(ctx context.Context, p BackupParams) (BackupResult, error) {
	return BackupResult{Success: true, Destination: p.Destination, SizeMB: 150}, nil
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

func main() {
	addr := flag.String("addr", ":8000", "listen address")
	db := flag.String("db", "", "database: a SQLite file (empty: in memory, lost at exit) or a postgres:// URL shared by several replicas")
	rescueAfter := flag.Duration("rescue-after", 15*time.Second, "heartbeat age after which a replica counts as dead and its running jobs are rescued")
	migrate := flag.Bool("migrate", false, "bring the database schema up to date, then exit")
	flag.Parse()
	logger := chapkit.LoggerFromEnv() // LOG_FORMAT (console|json), LOG_LEVEL

	reg := registry.New()
	registry.MustRegister(reg, "health_check", healthCheck)
	registry.MustRegister(reg, "cleanup_temp_files", cleanupTempFiles)
	registry.MustRegister(reg, "backup_database", backupDatabase)

	readOnly := chapkit.Permissions{Create: false, Read: true, Update: false, Delete: false}
	params := func(s string) json.RawMessage { return json.RawMessage(s) }
	b := chapkit.NewServiceBuilder(chapkit.ServiceInfo{
		DisplayName: "Read-Only Task Service",
		Version:     "1.0.0",
		Summary:     "Secure task execution service with pre-defined tasks only",
		Description: "Tasks are defined in code at start-up; over HTTP they can be read and executed only.",
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
		WithJobs(chapkit.JobsConfig{MaxConcurrency: 5, RescueAfter: *rescueAfter}).
		WithSystem().
		WithTasks(reg, chapkit.TasksConfig{Permissions: &readOnly}).
		OnStartup(chapkit.SeedTasks(
			task.In{ID: "01JCSEED0000000000000READ1", Command: "health_check", TaskType: task.TypePython, Parameters: params(`{}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000READ2", Command: "cleanup_temp_files", TaskType: task.TypePython, Parameters: params(`{"older_than_days": 7}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000READ3", Command: "backup_database", TaskType: task.TypePython, Parameters: params(`{"destination": "/backups"}`), Enabled: true},
			task.In{ID: "01JCSEED0000000000000READ4", Command: "echo 'System check complete'", TaskType: task.TypeShell, Enabled: true},
			task.In{ID: "01JCSEED0000000000000READ5", Command: "backup_database", TaskType: task.TypePython, Parameters: params(`{"destination": "/archive"}`), Enabled: false},
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
