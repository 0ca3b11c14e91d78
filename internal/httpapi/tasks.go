package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/openapi"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/task"
)

// executeResponse is the 202 body of $execute.
type executeResponse struct {
	JobID   string `json:"job_id"`
	Message string `json:"message"`
}

// taskRoutes is the table of the task routes. $execute is mounted
// whatever the permissions say.
func (s *Server) taskRoutes() []route {
	in := fixed(map[string]any{"type": "object", "title": "TaskIn", "properties": map[string]any{
		"id":              nullableSchema(map[string]any{"type": "string"}),
		"command":         map[string]any{"type": "string"},
		"task_type":       map[string]any{"type": "string", "enum": []string{task.TypeShell, task.TypePython, task.TypeFunction}},
		"parameters":      nullableSchema(map[string]any{"type": "object", "additionalProperties": true}),
		"enabled":         map[string]any{"type": "boolean"},
		"timeout_seconds": nullableSchema(map[string]any{"type": "integer"}),
		"schedule": nullableSchema(map[string]any{"type": "string",
			"description": "cron expression (5 fields, or 6 with seconds first), @hourly/@daily/..., or @every <duration>"}),
		"schedule_timezone":       nullableSchema(map[string]any{"type": "string", "description": "IANA time zone; default UTC"}),
		"schedule_overlap":        nullableSchema(map[string]any{"type": "string", "enum": []string{task.OverlapSkip, task.OverlapAllow}}),
		"schedule_catch_up":       nullableSchema(map[string]any{"type": "boolean"}),
		"max_attempts":            nullableSchema(map[string]any{"type": "integer", "minimum": 1, "maximum": task.MaxAttemptsLimit}),
		"retry_delay_seconds":     nullableSchema(map[string]any{"type": "number", "minimum": 0, "maximum": task.MaxRetryDelaySeconds}),
		"retry_max_delay_seconds": nullableSchema(map[string]any{"type": "number", "minimum": 0, "maximum": task.MaxRetryDelaySeconds}),
		"retry_on_exit_codes": map[string]any{"anyOf": []any{map[string]any{"type": "string", "enum": []string{"any"}},
			map[string]any{"type": "array", "items": map[string]any{"type": "integer", "minimum": 1, "maximum": 255}}, map[string]any{"type": "null"}}},
	}, "required": []string{"command"}})
	out := of(task.Out{})
	const tag = "Tasks"
	return []route{
		{http.MethodPost, "", s.createTask, permCreate, familyProblem, opDoc{tag: tag, summary: "Create a task (an existing id is replaced, also 201)",
			body: in, status: 201, contentType: jsonCT, result: out, location: true, errs: cat(bodyErrs, []errDoc{dbErr})}},
		{http.MethodGet, "", s.listTasks, permRead, familyProblem, opDoc{tag: tag, summary: "List tasks",
			query:  append([]openapi.Parameter{queryParam("enabled", "boolean", "only enabled (true) or disabled (false) tasks")}, pageParams...),
			status: 200, contentType: jsonCT, result: pageOf(task.Out{}),
			errs: listErrs}},
		{http.MethodGet, "/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, task.Schema()) }, permRead, familyProblem,
			opDoc{tag: tag, summary: "JSON Schema of a task", status: 200, contentType: jsonCT, result: anyObject}},
		{http.MethodGet, "/:id", s.getTask, permRead, familyProblem, opDoc{tag: tag, summary: "Get a task", status: 200, contentType: jsonCT, result: out, errs: idErrs}},
		{http.MethodPut, "/:id", s.putTask, permUpdate, familyProblem, opDoc{tag: tag, summary: "Replace a task", body: in, status: 200, contentType: jsonCT, result: out,
			errs: cat(bodyErrs, idErrs, []errDoc{dbErr})}},
		{http.MethodPatch, "/:id", s.patchTask, permUpdate, familyProblem, opDoc{tag: tag, summary: "Change some fields of a task (JSON merge patch, RFC 7396)",
			body: anyObject, status: 200, contentType: jsonCT, result: out, errs: cat(bodyErrs, idErrs, []errDoc{dbErr})}},
		{http.MethodDelete, "/:id", s.deleteTask, permDelete, familyProblem, opDoc{tag: tag, summary: "Delete a task", status: 204, errs: idErrs}},
		{http.MethodPost, "/:id/$execute", s.executeTask, always, familyDetail, opDoc{tag: tag, summary: "Execute a task as a background job", status: 202,
			contentType: jsonCT, result: of(executeResponse{}), location: true,
			errs: []errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID", nil}, {http.StatusBadRequest, shapeDetail, "Task not found or disabled", nil},
				{http.StatusConflict, shapeDetail, "The job could not be submitted", nil}, dbErr,
				{http.StatusServiceUnavailable, shapeProblem, "Draining or too many pending jobs", nil}}}},
	}
}

func (s *Server) createTask(c echo.Context) error {
	body, err := s.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := task.DecodeIn(body)
	if err != nil {
		return err
	}
	t, err := s.m().Tasks.Create(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return created(c, s.d.Tasks.Prefix, t.ID, t.Out())
}

func (s *Server) listTasks(c echo.Context) error {
	pg, items := parsePage(c)
	var params task.ListParams
	if raw, ok := c.QueryParams()["enabled"]; ok && len(raw) > 0 {
		b, valid := task.ParseBool(raw[0])
		if !valid {
			items = append(items, problem.Violation{Type: "bool_parsing", Loc: []any{"query", "enabled"},
				Msg: "Input should be a valid boolean, unable to interpret input", Input: raw[0]})
		}
		params.Enabled = &b
	}
	if len(items) > 0 {
		return problem.Invalid("chapkit.listTasks", items...)
	}
	if err := pg.check(); err != nil {
		return err
	}
	if pg.on {
		params.Page, params.Size = pg.page, pg.size
	}
	tasks, total, err := s.m().Tasks.List(c.Request().Context(), params)
	if err != nil {
		return err
	}
	out := make([]task.Out, len(tasks))
	for i := range tasks {
		out[i] = tasks[i].Out()
	}
	if pg.on {
		return c.JSON(http.StatusOK, newEnvelope(out, total, pg))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Server) getTask(c echo.Context) error {
	id, err := pathID(c, s.d.Tasks.Prefix)
	if err != nil {
		return err
	}
	t, err := s.m().Tasks.Get(c.Request().Context(), id)
	if err != nil {
		return withInstance(err, s.d.Tasks.Prefix+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (s *Server) putTask(c echo.Context) error {
	body, err := s.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := task.DecodeIn(body)
	if err != nil {
		return err
	}
	id, err := pathID(c, s.d.Tasks.Prefix)
	if err != nil {
		return err
	}
	t, err := s.m().Tasks.Update(c.Request().Context(), id, in)
	if err != nil {
		return withInstance(err, s.d.Tasks.Prefix+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (s *Server) patchTask(c echo.Context) error {
	body, err := s.decodeBody(c)
	if err != nil {
		return err
	}
	if _, ok := body.(map[string]any); !ok {
		return problem.Invalid("chapkit.patchTask", problem.Violation{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: body})
	}
	id, err := pathID(c, s.d.Tasks.Prefix)
	if err != nil {
		return err
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return err
	}
	t, err := s.m().Tasks.Patch(c.Request().Context(), id, patch)
	if err != nil {
		return withInstance(err, s.d.Tasks.Prefix+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (s *Server) deleteTask(c echo.Context) error {
	id, err := pathID(c, s.d.Tasks.Prefix)
	if err != nil {
		return err
	}
	if err := s.m().Tasks.Delete(c.Request().Context(), id); err != nil {
		return withInstance(err, s.d.Tasks.Prefix+"/"+id)
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) executeTask(c echo.Context) error {
	id, err := pathID(c, s.d.Tasks.Prefix)
	if err != nil {
		return err
	}
	if s.draining.Load() {
		return problem.Unavailable("chapkit.executeTask", 30, "The service is shutting down; retry against another instance or after it restarts")
	}
	ctx := c.Request().Context()
	jobID, err := s.m().Tasks.Execute(ctx, id)
	if err != nil {
		return err
	}
	// Asking first spares the attribute allocations on every execution
	// when the logger drops info records (the default logger drops all).
	if s.log.Enabled(ctx, slog.LevelInfo) {
		s.log.InfoContext(ctx, "task submitted", "task_id", id, "job_id", jobID) // carries request_id with WithLogging
	}
	c.Response().Header().Set(echo.HeaderLocation, c.Scheme()+"://"+c.Request().Host+s.d.Jobs.Prefix+"/"+jobID)
	return c.JSON(http.StatusAccepted, executeResponse{JobID: jobID, Message: "Task submitted for execution. Job ID: " + jobID})
}
