package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/livelog"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/openapi"
	"github.com/chapkit-go/chapkit/problem"
)

// jobRoutes is the table of the job routes; errors are plain details.
func (s *Server) jobRoutes() []route {
	const tag = "Jobs"
	notFound := errDoc{http.StatusNotFound, shapeDetail, "Job not found", nil}
	record := of(job.Record{})
	return []route{
		{http.MethodGet, "", s.listJobs, always, familyDetail, opDoc{tag: tag, summary: "List jobs, newest first",
			query: []openapi.Parameter{{Name: "status_filter", In: "query", Schema: statusSchema(), Description: "only jobs with this status"},
				{Name: "status", In: "query", Schema: statusSchema(), Description: "alias of status_filter; both given must agree"}},
			status: 200, contentType: jsonCT, result: arrOf(job.Record{}),
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid status or status_filter, or the two disagree", nil}}}},
		{http.MethodGet, "/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, jobListSchema()) }, always, familyDetail,
			opDoc{tag: tag, summary: "JSON Schema of the job list", status: 200, contentType: jsonCT, result: anyObject}},
		{http.MethodGet, "/$stream", s.streamAllJobs, always, familyDetail, opDoc{tag: tag, summary: "State changes of every job as Server-Sent Events",
			status: 200, contentType: sseCT, result: fixed(map[string]any{"type": "string", "description": "data: <JobRecord JSON with task_id (string or null)> " +
				"at every job's submission and state change, from every node; data: {\"id\": <id>, \"status\": \"deleted\"} when a job is deleted; " +
				"event: lost with data: {\"lost\": <count>} when a slow reader lost changes and should read the job list again. Never ends by itself."}),
			errs: []errDoc{{http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining", nil}}}},
		{http.MethodGet, "/:id", s.getJob, always, familyDetail, opDoc{tag: tag, summary: "Get a job", status: 200, contentType: jsonCT, result: record,
			errs: []errDoc{notFound}}},
		{http.MethodDelete, "/:id", s.deleteJob, always, familyDetail, opDoc{tag: tag, summary: "Cancel (if unfinished) and delete a job", status: 204,
			errs: []errDoc{notFound}}},
		{http.MethodPost, "/:id/$cancel", s.cancelJob, always, familyDetail, opDoc{tag: tag, summary: "Cancel a job and keep its record", status: 202,
			contentType: jsonCT, result: record, errs: []errDoc{notFound, {http.StatusConflict, shapeDetail, "Job already finished", nil}}}},
		{http.MethodGet, "/:id/$stream", s.streamJob, always, familyDetail, opDoc{tag: tag, summary: "Job record changes as Server-Sent Events",
			query:  []openapi.Parameter{queryParam("poll_interval", "number", "accepted and ignored")},
			status: 200, contentType: sseCT, result: fixed(map[string]any{"type": "string", "description": "data: <JobRecord JSON> events; data: {\"status\": \"deleted\"} when deleted"}),
			errs: []errDoc{{http.StatusBadRequest, shapeDetail, "Invalid job id", nil}, notFound, {http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining", nil}}}},
		{http.MethodGet, "/:id/$logs", s.streamLogs, always, familyDetail, opDoc{tag: tag, summary: "Output of a shell job as Server-Sent Events, live while it runs",
			status: 200, contentType: sseCT, result: fixed(map[string]any{"type": "string", "description": "event: stdout / event: stderr with data: <text as a JSON string>; " +
				"event: skipped with data: {\"stdout\": <bytes>, \"stderr\": <bytes>} when a slow reader lost text; " +
				"then one event: end with data: {\"exit_code\": <int or null>}. A finished job's stored output is replayed; " +
				"on PostgreSQL other nodes relay live text from the node running the job; on SQLite they replay it once it finished (docs/live-output.md)"}),
			errs: []errDoc{{http.StatusBadRequest, shapeDetail, "Invalid job id", nil}, notFound, {http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining", nil}}}},
	}
}

// sched returns the attached scheduler.
func (s *Server) sched() *job.Scheduler { return s.m().Scheduler }

func (s *Server) record(j *job.Job) job.Record { return j.Record(s.sched().RetriesEnabled()) }

// listJobs answers GET /jobs. status is an alias of status_filter (the
// name current chap-core clients send); each is validated the same way,
// and both given with different values is a 422.
func (s *Server) listJobs(c echo.Context) error {
	const op = "chapkit.listJobs"
	var status job.Status
	var from string
	q := c.QueryParams()
	for _, name := range []string{"status_filter", "status"} {
		if !q.Has(name) {
			continue
		}
		raw := q.Get(name)
		st, ok := job.ParseStatus(raw)
		if !ok {
			expected := "'pending', 'running', 'completed', 'failed' or 'canceled'"
			return problem.Invalid(op, problem.Violation{Type: "enum", Loc: []any{"query", name},
				Msg: "Input should be " + expected, Input: raw, Ctx: map[string]any{"expected": expected}})
		}
		if from != "" && st != status {
			return problem.Invalid(op, problem.Violation{Type: "value_error", Loc: []any{"query", "status"},
				Msg: "Value error, status and status_filter disagree; send one of them", Input: raw,
				Ctx: map[string]any{"status_filter": string(status)}})
		}
		status, from = st, name
	}
	jobs, err := s.sched().List(c.Request().Context(), status)
	if err != nil {
		return err
	}
	out := make([]job.Record, len(jobs))
	for i := range jobs {
		out[i] = s.record(&jobs[i])
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getJob(c echo.Context) error {
	j, err := s.sched().Get(c.Request().Context(), c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, s.record(j))
}

func (s *Server) deleteJob(c echo.Context) error {
	if err := s.sched().Delete(c.Request().Context(), c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) cancelJob(c echo.Context) error {
	j, err := s.sched().Cancel(c.Request().Context(), c.Param("id"))
	var fe *job.FinishedError
	if errors.As(err, &fe) {
		return problem.Conflict("chapkit.cancelJob", "%s", fe.Error())
	}
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, s.record(j))
}

// keepAlive is how long a job stream may stay silent before a comment
// line is sent, so proxies do not close it.
const keepAlive = 15 * time.Second

// streamJob pushes the job's record now and at every change, from the
// scheduler's notifications rather than by polling: poll_interval is
// accepted for compatibility and ignored (docs/http-api.md).
func (s *Server) streamJob(c echo.Context) error {
	id := c.Param("id")
	if !wire.ValidID(id) {
		return problem.BadRequest("chapkit.streamJob", "Invalid job ID format")
	}
	ctx := c.Request().Context()
	// Subscribe before reading, so no change between the two is missed.
	events, unsubscribe := s.sched().Subscribe(id)
	defer unsubscribe()
	j, err := s.sched().Get(ctx, id)
	if err != nil {
		return err
	}
	sse, err := s.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()

	last := s.record(j)
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
			rec := s.record(ev.Job)
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
		case <-s.closing:
			return nil
		}
	}
}

// jobChange is an event of the service-wide job stream: the job's record
// and, for task jobs, the task it runs.
type jobChange struct {
	job.Record
	TaskID *string `json:"task_id"`
}

// jobDeleted is the event of the service-wide stream for a deleted job.
type jobDeleted struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// taskIDOf returns the task a job runs, read from its arguments, or nil
// for a job that is not a task's.
func taskIDOf(j *job.Job) *string {
	var args struct {
		TaskID string `json:"task_id"`
	}
	if json.Unmarshal(j.Args, &args) != nil || args.TaskID == "" {
		return nil
	}
	return &args.TaskID
}

// streamAllJobs pushes every job's state changes, from every node, until
// the client leaves or the service drains. A client too slow to keep up
// loses changes and receives a `lost` event: it should then read the job
// list again (docs/console.md).
func (s *Server) streamAllJobs(c echo.Context) error {
	ctx := c.Request().Context()
	changes, unsubscribe := s.sched().SubscribeAll()
	defer unsubscribe()
	sse, err := s.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()
	if sse.head {
		return nil
	}
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	for {
		var err error
		select {
		case ch := <-changes.C():
			if ch.Deleted {
				err = sse.event(jobDeleted{ID: ch.ID, Status: "deleted"})
			} else {
				err = sse.event(jobChange{Record: s.record(ch.Job), TaskID: taskIDOf(ch.Job)})
			}
		case <-changes.LostC():
			b, _ := json.Marshal(map[string]int64{"lost": changes.Lost()})
			err = sse.named("lost", b)
		case <-tick.C:
			err = sse.comment("keep-alive")
		case <-ctx.Done():
			return nil
		case <-s.closing:
			return nil
		}
		if err != nil {
			return nil
		}
		tick.Reset(keepAlive)
	}
}

func sameRecord(x, y job.Record) bool {
	eq := func(p, q *string) bool { return (p == nil) == (q == nil) && (p == nil || *p == *q) }
	return x.Status == y.Status && eq(x.StartedAt, y.StartedAt) && eq(x.FinishedAt, y.FinishedAt) &&
		eq(x.ArtifactID, y.ArtifactID) && eq(x.Error, y.Error) && x.Attempt == y.Attempt
}

// jobListSchema is the JSON Schema of the job list, as GET /api/v1/jobs/$schema serves it.
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

// logEnd is the data of the end event of a job's output stream.
type logEnd struct {
	ExitCode *int `json:"exit_code"`
}

// logSkipped is the data of a skipped event.
type logSkipped struct {
	Stdout int64 `json:"stdout"`
	Stderr int64 `json:"stderr"`
}

// streamLogs sends a job's output as Server-Sent Events: `stdout` and
// `stderr` events whose data is the text as a JSON string, `skipped` with
// the bytes a slow reader lost, and one `end` event with the exit code
// (docs/live-output.md).
func (s *Server) streamLogs(c echo.Context) error {
	const op = "chapkit.streamLogs"
	id := c.Param("id")
	if !wire.ValidID(id) {
		return problem.BadRequest(op, "Invalid job ID format")
	}
	ctx := c.Request().Context()
	m := s.m()
	var data livelog.ArtifactData
	if arts := m.Artifacts; arts != nil {
		data = func(ctx context.Context, id string) (json.RawMessage, error) {
			a, err := arts.Get(ctx, id)
			if err != nil {
				return nil, err
			}
			return a.Data, nil
		}
	}
	hub := m.Live
	if hub == nil {
		hub = livelog.NewHub() // no shell tasks here: every job replays
	}
	r, err := livelog.NewReader(ctx, hub, m.Scheduler, data, id)
	if err != nil {
		return err
	}
	defer r.Close()
	sse, err := s.openStream(c)
	if err != nil {
		return err
	}
	defer sse.close()
	if sse.head {
		return nil
	}
	// The stream ends when the client goes or the drain begins.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.closing:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		// Next waits at most keepAlive, so an idle stream still sends a
		// comment now and then, which keeps proxies from closing it.
		wait, cancelWait := context.WithTimeout(ctx, keepAlive)
		ev, err := r.Next(wait)
		cancelWait()
		switch {
		case errors.Is(err, io.EOF) || ctx.Err() != nil:
			return nil
		case err != nil:
			if sse.comment("keep-alive") != nil {
				return nil
			}
			continue
		}
		var name string
		var body any
		switch ev.Kind {
		case livelog.Output:
			name, body = ev.Stream.String(), ev.Text
		case livelog.Skipped:
			name, body = "skipped", logSkipped{Stdout: ev.SkippedStdout, Stderr: ev.SkippedStderr}
		case livelog.End:
			name, body = "end", logEnd{ExitCode: ev.ExitCode}
		}
		b, err := json.Marshal(body)
		if err != nil {
			return nil
		}
		if sse.named(name, b) != nil || ev.Kind == livelog.End {
			return nil
		}
	}
}
