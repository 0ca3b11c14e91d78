package chapkit_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/sqlitedb"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
)

// TestUpgradePreviousRelease opens a database made by the previous
// release's schema (no node column, no node or lease tables, no migration
// records) with rows in it: Start upgrades it in place, keeps every row,
// rescues the job left running and runs the one left pending; a second
// start applies nothing more.
func TestUpgradePreviousRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	ddl, err := os.ReadFile("testdata/schema-previous-release.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlitedb.Open(path, sqlitedb.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range strings.Split(string(ddl), ";") {
		if stmt = strings.TrimSpace(stripComments(stmt)); stmt != "" {
			if err := db.Exec(stmt).Error; err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
	}
	const (
		taskID    = "01K72P5N5KCRM6MD3BRE4P0999"
		running   = "01K72P5N5KCRM6MD3BRE4P0001"
		pending   = "01K72P5N5KCRM6MD3BRE4P0002"
		completed = "01K72P5N5KCRM6MD3BRE4P0003"
		artID     = "01K72P5N5KCRM6MD3BRE4P0004"
	)
	now := time.Now().UTC()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{"INSERT INTO tasks (id, command, task_type, enabled, created_at, updated_at) VALUES (?, 'echo kept', 'shell', 1, ?, ?)", []any{taskID, now, now}},
		{"INSERT INTO artifacts (id, data, level, created_at, updated_at) VALUES (?, ?, 0, ?, ?)", []any{artID, []byte(`{"kept":true}`), now, now}},
		{"INSERT INTO jobs (id, kind, args, status, submitted_at, started_at, finished_at, artifact_id, attempt) VALUES (?, 'chapkit.task', ?, 'completed', ?, ?, ?, ?, 1)", []any{completed, []byte(`{"task_id":"` + taskID + `","task_type":"shell"}`), now, now, now, artID}},
		{"INSERT INTO jobs (id, kind, args, status, submitted_at, started_at, attempt) VALUES (?, 'chapkit.task', ?, 'running', ?, ?, 1)", []any{running, []byte(`{"task_id":"` + taskID + `","task_type":"shell"}`), now, now}},
		{"INSERT INTO jobs (id, kind, args, status, submitted_at, attempt) VALUES (?, 'chapkit.task', ?, 'pending', ?, 1)", []any{pending, []byte(`{"task_id":"` + taskID + `","task_type":"shell"}`), now}},
	} {
		if err := db.Exec(q.sql, q.args...).Error; err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.Close()
	}

	start := func() *chapkit.App {
		return apptest.Start(t, chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "upgrade"}).WithDatabase(path).
			WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).WithJobs(chapkit.JobsConfig{}).WithTasks(registry.New()))
	}
	app := start()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	got := map[string]job.Status{}
	for _, id := range []string{running, pending, completed} {
		j, err := app.Scheduler().Wait(ctx, id)
		if err != nil {
			t.Fatalf("Wait(%s): %v", id, err)
		}
		got[id] = j.Status
	}
	want := map[string]job.Status{running: job.StatusFailed, pending: job.StatusCompleted, completed: job.StatusCompleted}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("jobs after the upgrade (-want +got):\n%s", diff)
	}
	if a, err := app.Artifacts().Get(ctx, artID); err != nil || string(a.Data) != `{"kept":true}` {
		t.Errorf("old artifact = %v, %v", a, err)
	}
	var versions []int
	if err := app.DB().Table("chapkit_schema_migrations").Order("version").Pluck("version", &versions).Error; err != nil {
		t.Fatal(err)
	}
	if len(versions) == 0 {
		t.Fatal("no migration recorded")
	}
	if err := app.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Starting again finds every migration recorded and applies none.
	if err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "upgrade"}).WithDatabase(path).
		WithArtifacts(artifact.Hierarchy{Name: "task_executions"}).WithJobs(chapkit.JobsConfig{}).WithTasks(registry.New()).
		MustBuild().Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	app2 := start()
	var again []int
	if err := app2.DB().Table("chapkit_schema_migrations").Order("version").Pluck("version", &again).Error; err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(versions, again); diff != "" {
		t.Errorf("migrations after a second start (-want +got):\n%s", diff)
	}
}

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
