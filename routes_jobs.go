package chapkit

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/problem"
)

func (a *App) mountJobs(prefix string) {
	g := a.group(prefix, familyDetail)
	g.GET("", a.listJobs)
	g.GET("/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, jobListSchema()) })
	g.GET("/:id", a.getJob)
	g.DELETE("/:id", a.deleteJob)
	g.POST("/:id/$cancel", a.cancelJob)
	g.GET("/:id/$stream", a.streamJob)
}

func (a *App) record(j *job.Job) job.Record { return j.Record(a.sched.RetriesEnabled()) }

func (a *App) listJobs(c echo.Context) error {
	var status job.Status
	if raw := c.QueryParam("status_filter"); raw != "" || c.QueryParams().Has("status_filter") {
		st, ok := job.ParseStatus(raw)
		if !ok {
			expected := "'pending', 'running', 'completed', 'failed' or 'canceled'"
			return problem.Invalid("chapkit.listJobs", problem.Violation{Type: "enum", Loc: []any{"query", "status_filter"},
				Msg: "Input should be " + expected, Input: raw, Ctx: map[string]any{"expected": expected}})
		}
		status = st
	}
	jobs, err := a.sched.List(c.Request().Context(), status)
	if err != nil {
		return err
	}
	out := make([]job.Record, len(jobs))
	for i := range jobs {
		out[i] = a.record(&jobs[i])
	}
	return c.JSON(http.StatusOK, out)
}

func (a *App) getJob(c echo.Context) error {
	j, err := a.sched.Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, a.record(j))
}

func (a *App) deleteJob(c echo.Context) error {
	if err := a.sched.Delete(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *App) cancelJob(c echo.Context) error {
	j, err := a.sched.Cancel(c.Request().Context(), c.Param("id"))
	var fe *job.FinishedError
	if errors.As(err, &fe) {
		return problem.Conflict("chapkit.cancelJob", "%s", fe.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, a.record(j))
}

// keepAlive is how long a job stream may stay silent before a comment
// line is sent, so proxies do not close it (CONTRACT D6).
const keepAlive = 15 * time.Second

// streamJob pushes the job's record now and at every change (CONTRACT
// §4.9, D6): no polling, poll_interval is accepted and ignored.
func (a *App) streamJob(c echo.Context) error {
	id := c.Param("id")
	if !wire.ValidID(id) {
		return problem.BadRequest("chapkit.streamJob", "Invalid job ID format")
	}
	ctx := c.Request().Context()
	// Subscribe before reading, so no change between the two is missed.
	events, unsubscribe := a.sched.Subscribe(id)
	defer unsubscribe()
	j, err := a.sched.Get(ctx, id)
	if err != nil {
		return err
	}
	sse, err := a.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()

	last := a.record(j)
	if err := sse.event(last); err != nil || last.Status.Terminal() {
		return nil
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		select {
		case ev := <-events:
			if ev.Deleted {
				_ = sse.raw([]byte(`{"status": "deleted"}`))
				return nil
			}
			rec := a.record(ev.Job)
			if sameRecord(rec, last) {
				continue
			}
			last = rec
			if err := sse.event(rec); err != nil || rec.Status.Terminal() {
				return nil
			}
			tick.Reset(keepAlive)
		case <-tick.C:
			if err := sse.comment("keep-alive"); err != nil {
				return nil
			}
		case <-ctx.Done():
			return nil
		case <-a.closing:
			return nil
		}
	}
}

func sameRecord(a, b job.Record) bool {
	eq := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.Status == b.Status && eq(a.StartedAt, b.StartedAt) && eq(a.FinishedAt, b.FinishedAt) &&
		eq(a.ArtifactID, b.ArtifactID) && eq(a.Error, b.Error) && a.Attempt == b.Attempt
}

// jobListSchema is the JSON Schema of the job list (CONTRACT §3.2).
func jobListSchema() map[string]any {
	nullable := func(t string, extra ...string) map[string]any {
		s := map[string]any{"type": t}
		if len(extra) > 0 {
			s["format"] = extra[0]
		}
		return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
	}
	return map[string]any{
		"type":  "array",
		"items": map[string]any{"$ref": "#/$defs/JobRecord"},
		"$defs": map[string]any{
			"JobStatus": map[string]any{"type": "string", "enum": job.Statuses},
			"JobRecord": map[string]any{
				"type":  "object",
				"title": "JobRecord",
				"properties": map[string]any{
					"id":              map[string]any{"type": "string", "format": "ulid"},
					"status":          map[string]any{"$ref": "#/$defs/JobStatus"},
					"submitted_at":    nullable("string", "date-time"),
					"started_at":      nullable("string", "date-time"),
					"finished_at":     nullable("string", "date-time"),
					"error":           nullable("string"),
					"error_traceback": nullable("string"),
					"artifact_id":     nullable("string", "ulid"),
				},
				"required": []string{"id"},
			},
		},
	}
}
