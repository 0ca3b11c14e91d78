package chapkit

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/task"
)

// executeResponse is the 202 body of $execute.
type executeResponse struct {
	JobID   string `json:"job_id"`
	Message string `json:"message"`
}

func (a *App) mountTasks(prefix string, p Permissions) {
	crud := a.group(prefix, familyProblem)
	if p.Create {
		crud.POST("", a.createTask)
	}
	if p.Read {
		crud.GET("", a.listTasks)
		crud.GET("/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, task.Schema()) })
		crud.GET("/:id", a.getTask)
	}
	if p.Update {
		crud.PUT("/:id", a.putTask)
		crud.PATCH("/:id", a.patchTask)
	}
	if p.Delete {
		crud.DELETE("/:id", a.deleteTask)
	}
	a.group(prefix, familyDetail).POST("/:id/$execute", a.executeTask)
}

func (a *App) tasksPrefix() string { return orDefault(a.b.tasks.Prefix, "/api/v1/tasks") }

func (a *App) createTask(c echo.Context) error {
	body, err := a.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := task.DecodeIn(body)
	if err != nil {
		return err
	}
	t, err := a.tasks.Create(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return created(c, a.tasksPrefix(), t.ID, t.Out())
}

func (a *App) listTasks(c echo.Context) error {
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
	tasks, total, err := a.tasks.List(c.Request().Context(), params)
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

func (a *App) getTask(c echo.Context) error {
	id, err := pathID(c, a.tasksPrefix())
	if err != nil {
		return err
	}
	t, err := a.tasks.Get(c.Request().Context(), id)
	if err != nil {
		return withInstance(err, a.tasksPrefix()+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (a *App) putTask(c echo.Context) error {
	body, err := a.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := task.DecodeIn(body)
	if err != nil {
		return err
	}
	id, err := pathID(c, a.tasksPrefix())
	if err != nil {
		return err
	}
	t, err := a.tasks.Update(c.Request().Context(), id, in)
	if err != nil {
		return withInstance(err, a.tasksPrefix()+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (a *App) patchTask(c echo.Context) error {
	body, err := a.decodeBody(c)
	if err != nil {
		return err
	}
	if _, ok := body.(map[string]any); !ok {
		return problem.Invalid("chapkit.patchTask", problem.Violation{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: body})
	}
	id, err := pathID(c, a.tasksPrefix())
	if err != nil {
		return err
	}
	patch, err := json.Marshal(body)
	if err != nil {
		return err
	}
	t, err := a.tasks.Patch(c.Request().Context(), id, patch)
	if err != nil {
		return withInstance(err, a.tasksPrefix()+"/"+id)
	}
	return c.JSON(http.StatusOK, t.Out())
}

func (a *App) deleteTask(c echo.Context) error {
	id, err := pathID(c, a.tasksPrefix())
	if err != nil {
		return err
	}
	if err := a.tasks.Delete(c.Request().Context(), id); err != nil {
		return withInstance(err, a.tasksPrefix()+"/"+id)
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *App) executeTask(c echo.Context) error {
	id, err := pathID(c, a.tasksPrefix())
	if err != nil {
		return err
	}
	if a.draining.Load() {
		return problem.Unavailable("chapkit.executeTask", 30, "The service is shutting down; retry against another instance or after it restarts")
	}
	jobID, err := a.tasks.Execute(c.Request().Context(), id)
	if err != nil {
		return err
	}
	a.log.InfoContext(c.Request().Context(), "task submitted", "task_id", id, "job_id", jobID) // carries request_id with WithLogging
	return c.JSON(http.StatusAccepted, executeResponse{JobID: jobID, Message: "Task submitted for execution. Job ID: " + jobID})
}
