package chapkit_test

import (
	"context"
	"encoding/json"
	"github.com/chapkit-go/chapkit/internal/testkit/apptest"
	"strings"
	"testing"

	"github.com/chapkit-go/chapkit"
	"github.com/chapkit-go/chapkit/job"
)

// A host program's own durable job kind runs next to the REST API and is
// listed by it.
func TestCustomJobHandler(t *testing.T) {
	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "jobs"}).
		WithDatabase(apptest.DBTarget(t)).
		WithJobs(chapkit.JobsConfig{}).
		WithJobHandler("greet", func(ctx context.Context, run *job.Run) (any, error) {
			var args struct{ Name string }
			if err := json.Unmarshal(run.Job.Args, &args); err != nil {
				return nil, err
			}
			if args.Name == "" {
				return nil, context.Canceled
			}
			return "hello " + args.Name, nil
		}).
		Build()
	if err != nil {
		t.Fatal(err)
	}
	if err := app.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer app.Shutdown(context.Background())
	id, err := app.Scheduler().Submit(t.Context(), "greet", map[string]string{"Name": "chapkit"})
	if err != nil {
		t.Fatal(err)
	}
	j, err := app.Scheduler().Wait(t.Context(), id)
	if err != nil || j.Status != job.StatusCompleted || j.ArtifactID != nil {
		t.Fatalf("job %+v, %v", j, err)
	}
	if _, err := app.Scheduler().Submit(t.Context(), "unknown", nil); err == nil {
		t.Fatal("Submit of an unregistered kind succeeded")
	}
}

func TestJobHandlerValidation(t *testing.T) {
	h := func(ctx context.Context, run *job.Run) (any, error) { return nil, nil }
	_, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "x"}).
		WithJobHandler("a", h).WithJobHandler("a", h).WithJobHandler("chapkit.task", h).Build()
	for _, want := range []string{`"a" registered twice`, "reserved", "need a job scheduler"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Build() error = %v, want it to mention %q", err, want)
		}
	}
}
