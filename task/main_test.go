package task

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/inject"
	"github.com/chapkit-go/chapkit/internal/dbtest"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/registry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testBundle is what the execution tests work with: a manager wired to a
// running scheduler, an artifact store and a registry on one database.
type testBundle struct {
	db    *gorm.DB
	mgr   *Manager
	sched *job.Scheduler
	arts  *artifact.Manager
	reg   *registry.Registry
}

// setupOpts tunes setup. register adds the test's functions to the
// registry before the scheduler starts.
type setupOpts struct {
	maxConcurrency int
	maxOutput      int64
	rescueAfter    time.Duration // the scheduler's rescue horizon; 0 means its default
	register       func(tb testing.TB, reg *registry.Registry)
	config         func(cfg *Config) // adjusts the manager's configuration
}

func setup(tb testing.TB, o setupOpts) *testBundle {
	tb.Helper()
	db := dbtest.Open(tb, &Task{}, &artifact.Artifact{})
	if err := job.Migrate(tb.Context(), db); err != nil {
		tb.Fatal(err)
	}
	arts := artifact.NewManager(db, &artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}})
	sched := job.New(db, job.Config{MaxConcurrency: o.maxConcurrency, DrainTimeout: 2 * time.Second, RescueAfter: o.rescueAfter})
	reg := registry.New()
	if o.register != nil {
		o.register(tb, reg)
	}
	container := inject.New()
	err := inject.ProvideFunc(container, func(ctx context.Context) (*gorm.DB, error) { return db.WithContext(ctx), nil })
	if err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Jobs: sched, Artifacts: arts, Registry: reg, Container: container, MaxOutput: o.maxOutput}
	if o.config != nil {
		o.config(&cfg)
	}
	mgr := NewManager(db, cfg)
	if err := sched.Handle(JobKind, mgr.RunJob); err != nil {
		tb.Fatal(err)
	}
	if err := sched.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = sched.Stop(context.Background()) })
	return &testBundle{db: db, mgr: mgr, sched: sched, arts: arts, reg: reg}
}

// newStore returns a manager with only a database, for the CRUD tests.
func newStore(tb testing.TB) (*Manager, *gorm.DB) {
	tb.Helper()
	db := dbtest.Open(tb, &Task{})
	return NewManager(db, Config{}), db
}

// mustDecode decodes a JSON text the way request bodies are decoded.
func mustDecode(tb testing.TB, s string) any {
	tb.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("decode %s: %v", s, err)
	}
	return v
}

// mustIn validates a TaskIn body given as JSON text.
func mustIn(tb testing.TB, body string) In {
	tb.Helper()
	in, err := DecodeIn(mustDecode(tb, body))
	if err != nil {
		tb.Fatalf("DecodeIn(%s): %v", body, err)
	}
	return in
}

// mustCreate stores a task from a TaskIn body given as JSON text.
func mustCreate(tb testing.TB, m *Manager, body string) *Task {
	tb.Helper()
	t, err := m.Create(context.Background(), mustIn(tb, body))
	if err != nil {
		tb.Fatalf("Create(%s): %v", body, err)
	}
	return t
}

func mustGet(tb testing.TB, m *Manager, id string) *Task {
	tb.Helper()
	t, err := m.Get(context.Background(), id)
	if err != nil {
		tb.Fatalf("Get(%s): %v", id, err)
	}
	return t
}

// problemOf returns err as a *problem.Error, failing the test otherwise.
func problemOf(tb testing.TB, err error) *problem.Error {
	tb.Helper()
	var pe *problem.Error
	if !errors.As(err, &pe) {
		tb.Fatalf("error = %v (%T), want a *problem.Error", err, err)
	}
	return pe
}

// runTask executes the task and waits for its job to end.
func runTask(tb testing.TB, b *testBundle, id string) *job.Job {
	tb.Helper()
	jobID, err := b.mgr.Execute(context.Background(), id)
	if err != nil {
		tb.Fatalf("Execute(%s): %v", id, err)
	}
	return waitJob(tb, b, jobID)
}

func waitJob(tb testing.TB, b *testBundle, jobID string) *job.Job {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	j, err := b.sched.Wait(ctx, jobID)
	if err != nil {
		tb.Fatalf("Wait(%s): %v", jobID, err)
	}
	return j
}

// completedData returns the artifact data of a completed job, decoded.
func completedData(tb testing.TB, b *testBundle, j *job.Job) map[string]any {
	tb.Helper()
	if j.Status != job.StatusCompleted {
		tb.Fatalf("job %s status = %s (error %v), want completed", j.ID, j.Status, deref(j.Error))
	}
	if j.ArtifactID == nil {
		tb.Fatalf("job %s completed without artifact_id", j.ID)
	}
	a, err := b.arts.Get(context.Background(), *j.ArtifactID)
	if err != nil {
		tb.Fatalf("artifact %s: %v", *j.ArtifactID, err)
	}
	if a.ParentID != nil || a.Level != 0 {
		tb.Errorf("artifact parent_id = %v, level = %d, want a root at level 0", a.ParentID, a.Level)
	}
	var data map[string]any
	if err := json.Unmarshal(a.Data, &data); err != nil {
		tb.Fatalf("artifact data %s: %v", a.Data, err)
	}
	// The resource keys vary per run: check their type here and leave the
	// rest for the caller to compare exactly (TestArtifactUsageKeys checks
	// their values).
	for _, k := range usageKeys {
		v, present := data[k]
		if !present {
			continue
		}
		if n, ok := v.(float64); !ok || n < 0 {
			tb.Errorf("artifact %s = %v, want a number >= 0", k, v)
		}
		delete(data, k)
	}
	return data
}

// usageKeys are the optional resource keys of artifacts, in wire order.
var usageKeys = []string{"duration_seconds", "cpu_user_seconds", "cpu_system_seconds", "max_rss_bytes"}

func countArtifacts(tb testing.TB, b *testBundle) int64 {
	tb.Helper()
	var n int64
	if err := b.db.Model(&artifact.Artifact{}).Count(&n).Error; err != nil {
		tb.Fatal(err)
	}
	return n
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}
