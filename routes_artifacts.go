package chapkit

import (
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

func (a *App) mountArtifacts(prefix string, p Permissions) {
	crud := a.group(prefix, familyProblem)
	if p.Create {
		crud.POST("", a.createArtifact)
	}
	if p.Read {
		crud.GET("", a.listArtifacts)
		crud.GET("/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, artifactSchema()) })
		crud.GET("/:id", a.getArtifact)
	}
	if p.Update {
		crud.PUT("/:id", a.putArtifact)
	}
	if p.Delete {
		crud.DELETE("/:id", a.deleteArtifact)
	}
	ops := a.group(prefix, familyDetail)
	ops.GET("/:id/$expand", a.expandArtifact)
	ops.GET("/:id/$tree", a.treeArtifact)
}

func (a *App) artifactsPrefix() string { return orDefault(a.b.artifacts.Prefix, "/api/v1/artifacts") }

// decodeArtifactIn validates an ArtifactIn body: data is required (null
// passes here and fails in storage), id and parent_id are ULIDs or null,
// level is accepted and ignored.
func decodeArtifactIn(body any) (artifact.In, error) {
	const op = "chapkit.decodeArtifactIn"
	obj, ok := body.(map[string]any)
	if !ok {
		return artifact.In{}, problem.Invalid(op, problem.Violation{Type: "model_attributes_type", Loc: []any{"body"},
			Msg: "Input should be a valid dictionary or object to extract fields from", Input: body})
	}
	var in artifact.In
	var items []problem.Violation
	if v, present := obj["data"]; !present {
		items = append(items, problem.Violation{Type: "missing", Loc: []any{"body", "data"}, Msg: "Field required", Input: obj})
	} else if v != nil {
		raw, err := json.Marshal(v)
		if err != nil {
			return artifact.In{}, err
		}
		in.Data = raw
	}
	for _, field := range []string{"id", "parent_id"} {
		v, present := obj[field]
		if !present || v == nil {
			continue
		}
		s, ok := v.(string)
		if !ok || !wire.ValidID(s) {
			items = append(items, problem.Violation{Type: "ulid_format", Loc: []any{"body", field}, Msg: "Unrecognized format", Input: v})
			continue
		}
		if field == "id" {
			in.ID = s
		} else {
			in.ParentID = &s
		}
	}
	if len(items) > 0 {
		return artifact.In{}, problem.Invalid(op, items...)
	}
	return in, nil
}

func (a *App) createArtifact(c echo.Context) error {
	body, err := a.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := decodeArtifactIn(body)
	if err != nil {
		return err
	}
	art, err := a.artifacts.Create(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return created(c, a.artifactsPrefix(), art.ID, art.Out())
}

func (a *App) listArtifacts(c echo.Context) error {
	pg, items := parsePage(c)
	if len(items) > 0 {
		return problem.Invalid("chapkit.listArtifacts", items...)
	}
	if err := pg.check(); err != nil {
		return err
	}
	var arts []artifact.Artifact
	var total int64
	var err error
	if pg.on {
		arts, total, err = a.artifacts.List(c.Request().Context(), pg.page, pg.size)
	} else {
		arts, total, err = a.artifacts.List(c.Request().Context(), 0, 0)
	}
	if err != nil {
		return err
	}
	out := make([]artifact.Out, len(arts))
	for i := range arts {
		out[i] = arts[i].Out()
	}
	if pg.on {
		return c.JSON(http.StatusOK, newEnvelope(out, total, pg))
	}
	return c.JSON(http.StatusOK, out)
}

func (a *App) getArtifact(c echo.Context) error {
	id, err := pathID(c, a.artifactsPrefix())
	if err != nil {
		return err
	}
	art, err := a.artifacts.Get(c.Request().Context(), id)
	if err != nil {
		return withInstance(err, a.artifactsPrefix()+"/"+id)
	}
	return c.JSON(http.StatusOK, art.Out())
}

func (a *App) putArtifact(c echo.Context) error {
	body, err := a.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := decodeArtifactIn(body)
	if err != nil {
		return err
	}
	id, err := pathID(c, a.artifactsPrefix())
	if err != nil {
		return err
	}
	art, err := a.artifacts.Update(c.Request().Context(), id, in)
	if err != nil {
		return withInstance(err, a.artifactsPrefix()+"/"+id)
	}
	return c.JSON(http.StatusOK, art.Out())
}

func (a *App) deleteArtifact(c echo.Context) error {
	id, err := pathID(c, a.artifactsPrefix())
	if err != nil {
		return err
	}
	if err := a.artifacts.Delete(c.Request().Context(), id); err != nil {
		return withInstance(err, a.artifactsPrefix()+"/"+id)
	}
	return c.NoContent(http.StatusNoContent)
}

func (a *App) expandArtifact(c echo.Context) error {
	id, err := pathID(c, a.artifactsPrefix())
	if err != nil {
		return err
	}
	node, err := a.artifacts.Expand(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, node)
}

func (a *App) treeArtifact(c echo.Context) error {
	id, err := pathID(c, a.artifactsPrefix())
	if err != nil {
		return err
	}
	node, err := a.artifacts.Tree(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, node)
}

func artifactSchema() map[string]any {
	ts := map[string]any{"type": "string", "format": "date-time"}
	return map[string]any{
		"title": "ArtifactOut",
		"type":  "object",
		"properties": map[string]any{
			"id":         map[string]any{"type": "string", "format": "ulid"},
			"created_at": ts,
			"updated_at": ts,
			"data":       map[string]any{},
			"parent_id":  map[string]any{"anyOf": []any{map[string]any{"type": "string", "format": "ulid"}, map[string]any{"type": "null"}}},
			"level":      map[string]any{"type": "integer"},
		},
		"required": []string{"id", "created_at", "updated_at", "data", "level"},
	}
}
