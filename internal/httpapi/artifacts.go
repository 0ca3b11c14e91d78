package httpapi

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/openapi"
	"github.com/chapkit-go/chapkit/problem"
)

// artifactRoutes is the table of the artifact routes. $expand and $tree
// are mounted whatever the permissions say.
func (s *Server) artifactRoutes() []route {
	const tag = "Artifacts"
	in := fixed(map[string]any{"type": "object", "title": "ArtifactIn", "properties": map[string]any{
		"id": nullableSchema(map[string]any{"type": "string"}), "parent_id": nullableSchema(map[string]any{"type": "string"}),
		"data": map[string]any{}, "level": map[string]any{"type": "integer"},
		"tags": map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "replaces the tags; absent or null keeps them on update, [] on create"}},
		"required": []string{"data"}})
	out := of(artifact.Out{})
	tree := of(artifact.TreeNode{})
	treeErrs := []errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID", nil}, {http.StatusNotFound, shapeDetail, "Not found", nil}}
	return []route{
		{http.MethodPost, "", s.createArtifact, permCreate, familyProblem, opDoc{tag: tag, summary: "Create an artifact", body: in, status: 201,
			contentType: jsonCT, location: true, result: out, errs: cat(bodyErrs, []errDoc{dbErr})}},
		{http.MethodGet, "", s.listArtifacts, permRead, familyProblem, opDoc{tag: tag, summary: "List artifacts",
			query:       append([]openapi.Parameter{queryParam("tag", "string", "only artifacts carrying this tag (exact match)")}, pageParams...),
			status:      200,
			contentType: jsonCT, result: pageOf(artifact.Out{}), errs: listErrs}},
		{http.MethodGet, "/$schema", func(c echo.Context) error { return c.JSON(http.StatusOK, artifactSchema()) }, permRead, familyProblem,
			opDoc{tag: tag, summary: "JSON Schema of an artifact", status: 200, contentType: jsonCT, result: anyObject}},
		{http.MethodGet, "/:id", s.getArtifact, permRead, familyProblem, opDoc{tag: tag, summary: "Get an artifact", status: 200, contentType: jsonCT,
			result: out, errs: idErrs}},
		{http.MethodPut, "/:id", s.putArtifact, permUpdate, familyProblem, opDoc{tag: tag, summary: "Replace an artifact", body: in, status: 200,
			contentType: jsonCT, result: out, errs: cat(bodyErrs, idErrs, []errDoc{dbErr})}},
		{http.MethodDelete, "/:id", s.deleteArtifact, permDelete, familyProblem, opDoc{tag: tag, summary: "Delete an artifact", status: 204, errs: idErrs}},
		{http.MethodGet, "/:id/$download", s.downloadArtifact, permRead, familyProblem, opDoc{tag: tag,
			summary: "Download an artifact's data as a file (JSON, or text for shell outputs)",
			query:   []openapi.Parameter{{Name: "format", In: "query", Description: "json (default) or text (shell outputs only)", Schema: map[string]any{"type": "string", "enum": []string{"json", "text"}}}},
			status:  200, contentType: jsonCT, result: fixed(map[string]any{}),
			alt: map[string]schemaFn{"text/plain": fixed(map[string]any{"type": "string"})},
			errs: cat([]errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID, or format=text for data that is not a shell output", nil}},
				idErrs, []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid format", nil}})}},
		{http.MethodGet, "/:id/$expand", s.expandArtifact, always, familyDetail, opDoc{tag: tag, summary: "Artifact with its hierarchy labels", status: 200,
			contentType: jsonCT, result: tree, errs: treeErrs}},
		{http.MethodGet, "/:id/$tree", s.treeArtifact, always, familyDetail, opDoc{tag: tag, summary: "Artifact with all its descendants", status: 200,
			contentType: jsonCT, result: tree, errs: treeErrs}},
	}
}

// decodeArtifactIn validates an ArtifactIn body: data is required (null
// passes here and fails in storage), id and parent_id are ULIDs or null,
// tags is a list of strings or null (null or absent: none on create, keep
// on update), level is accepted and ignored.
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
	if v, present := obj["tags"]; present && v != nil {
		list, ok := v.([]any)
		if !ok {
			items = append(items, problem.Violation{Type: "list_type", Loc: []any{"body", "tags"}, Msg: "Input should be a valid list", Input: v})
		} else {
			tags := make([]string, 0, len(list))
			for i, e := range list {
				t, ok := e.(string)
				if !ok {
					items = append(items, problem.Violation{Type: "string_type", Loc: []any{"body", "tags", i}, Msg: "Input should be a valid string", Input: e})
					continue
				}
				tags = append(tags, t)
			}
			in.Tags = &tags
		}
	}
	if len(items) > 0 {
		return artifact.In{}, problem.Invalid(op, items...)
	}
	return in, nil
}

func (s *Server) createArtifact(c echo.Context) error {
	body, err := s.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := decodeArtifactIn(body)
	if err != nil {
		return err
	}
	art, err := s.m().Artifacts.Create(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return created(c, s.d.Artifacts.Prefix, art.ID, art.Out())
}

func (s *Server) listArtifacts(c echo.Context) error {
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
	tag := c.QueryParam("tag")
	if pg.on {
		arts, total, err = s.m().Artifacts.ListTagged(c.Request().Context(), tag, pg.page, pg.size)
	} else {
		arts, total, err = s.m().Artifacts.ListTagged(c.Request().Context(), tag, 0, 0)
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

func (s *Server) getArtifact(c echo.Context) error {
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	art, err := s.m().Artifacts.Get(c.Request().Context(), id)
	if err != nil {
		return withInstance(err, s.d.Artifacts.Prefix+"/"+id)
	}
	return c.JSON(http.StatusOK, art.Out())
}

func (s *Server) putArtifact(c echo.Context) error {
	body, err := s.decodeBody(c)
	if err != nil {
		return err
	}
	in, err := decodeArtifactIn(body)
	if err != nil {
		return err
	}
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	art, err := s.m().Artifacts.Update(c.Request().Context(), id, in)
	if err != nil {
		return withInstance(err, s.d.Artifacts.Prefix+"/"+id)
	}
	return c.JSON(http.StatusOK, art.Out())
}

func (s *Server) deleteArtifact(c echo.Context) error {
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	if err := s.m().Artifacts.Delete(c.Request().Context(), id); err != nil {
		return withInstance(err, s.d.Artifacts.Prefix+"/"+id)
	}
	return c.NoContent(http.StatusNoContent)
}

// downloadArtifact answers $download: the artifact's data as a file.
// The JSON form (the default) is the stored data as it is, named
// artifact-<id>.json. The text form, for the output of a shell task (data
// holding a string stdout), is its stdout followed, when stderr is not
// empty, by a line "--- stderr ---" and stderr; it is named
// artifact-<id>.txt. The text form is chosen by ?format=text (for data
// without it, a 400), or, without format, by an Accept header naming text/plain
// before any JSON type (JSON when the data has no text form).
func (s *Server) downloadArtifact(c echo.Context) error {
	const op = "chapkit.downloadArtifact"
	format := c.QueryParam("format")
	if c.QueryParams().Has("format") && format != "json" && format != "text" {
		return problem.Invalid(op, problem.Violation{Type: "enum", Loc: []any{"query", "format"},
			Msg: "Input should be 'json' or 'text'", Input: format, Ctx: map[string]any{"expected": "'json' or 'text'"}})
	}
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	art, err := s.m().Artifacts.Get(c.Request().Context(), id)
	if err != nil {
		return withInstance(err, s.d.Artifacts.Prefix+"/"+id)
	}
	wantText := format == "text" || (format == "" && prefersText(c.Request().Header.Get(echo.HeaderAccept)))
	if wantText {
		text, ok := shellText(art.Data)
		if ok {
			c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="artifact-`+id+`.txt"`)
			return c.Blob(http.StatusOK, textCT, []byte(text))
		}
		if format == "text" {
			e := problem.New(problem.KindBadRequest, op, "Artifact %s has no text form: only shell task outputs have one", id)
			e.Instance = s.d.Artifacts.Prefix + "/" + id + "/$download"
			return e
		}
	}
	c.Response().Header().Set(echo.HeaderContentDisposition, `attachment; filename="artifact-`+id+`.json"`)
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, art.Data)
}

// prefersText reports whether an Accept header names text/plain before
// any JSON media type (application/json, */*+json) or a wildcard.
func prefersText(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil || params["q"] == "0" {
			continue
		}
		switch {
		case mt == "text/plain":
			return true
		case mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "*/*", mt == "application/*":
			return false
		}
	}
	return false
}

// shellText is the text form of a shell task's output, and whether data
// is one.
func shellText(data []byte) (string, bool) {
	var out struct {
		Stdout *string `json:"stdout"`
		Stderr *string `json:"stderr"`
	}
	if json.Unmarshal(data, &out) != nil || out.Stdout == nil {
		return "", false
	}
	text := *out.Stdout
	if out.Stderr != nil && *out.Stderr != "" {
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += "--- stderr ---\n" + *out.Stderr
	}
	return text, true
}

func (s *Server) expandArtifact(c echo.Context) error {
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	node, err := s.m().Artifacts.Expand(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, node)
}

func (s *Server) treeArtifact(c echo.Context) error {
	id, err := pathID(c, s.d.Artifacts.Prefix)
	if err != nil {
		return err
	}
	node, err := s.m().Artifacts.Tree(c.Request().Context(), id)
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
			"tags":       map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		},
		"required": []string{"id", "created_at", "updated_at", "data", "level", "tags"},
	}
}
