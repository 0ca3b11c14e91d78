package httpapi

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/openapi"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/task"
)

// opDoc is the documentation of one route in its table.
type opDoc struct {
	tag, summary string
	query        []openapi.Parameter
	body         schemaFn // request body schema; nil: none
	status       int
	contentType  string   // of the success response; "" for no body
	result       schemaFn // success schema
	// alt are further media types of the success response (content
	// negotiation), by content type.
	alt map[string]schemaFn
	// location documents the Location header of the success response
	// (the absolute URL of the created resource or job).
	location bool
	errs     []errDoc
}

// schemaFn gives a schema, registering the components it refers to with
// the generator of the document being built.
type schemaFn func(g *schemaGen) any

// of is the schema of v's type.
func of(v any) schemaFn { return func(g *schemaGen) any { return g.schema(reflect.TypeOf(v)) } }

// arrOf is the schema of an array of v's type.
func arrOf(v any) schemaFn {
	return func(g *schemaGen) any { return map[string]any{"type": "array", "items": of(v)(g)} }
}

// pageOf is the schema of a list of v that may be paginated.
func pageOf(v any) schemaFn {
	return func(g *schemaGen) any {
		return map[string]any{"anyOf": []any{arrOf(v)(g), map[string]any{"type": "object", "title": "Page",
			"properties": map[string]any{"items": arrOf(v)(g), "total": map[string]any{"type": "integer"},
				"page": map[string]any{"type": "integer"}, "size": map[string]any{"type": "integer"}, "pages": map[string]any{"type": "integer"}},
			"required": []string{"items", "total", "page", "size", "pages"}}}}
	}
}

// fixed is a schema written by hand.
func fixed(schema any) schemaFn { return func(*schemaGen) any { return schema } }

// anyObject is the schema of any JSON object.
// (additionalProperties is spelled out: generators read a bare object
// schema as "no properties allowed").
var anyObject = fixed(map[string]any{"type": "object", "additionalProperties": true})

// statusSchema is the schema of a job status.
func statusSchema() map[string]any { return map[string]any{"type": "string", "enum": job.Statuses} }

func queryParam(name, typ, desc string) openapi.Parameter {
	return openapi.Parameter{Name: name, In: "query", Description: desc, Schema: map[string]any{"type": typ}}
}

// Content types and error lists that many routes share.
const (
	jsonCT = "application/json"
	sseCT  = "text/event-stream"
	textCT = "text/plain; charset=utf-8"
)

var (
	pageParams = []openapi.Parameter{queryParam("page", "integer", "page number, from 1 (with size)"), queryParam("size", "integer", "page size (with page)")}
	bodyErrs   = []errDoc{
		{http.StatusRequestEntityTooLarge, shapeProblem, "Request body too large", nil},
		{http.StatusUnsupportedMediaType, shapeProblem, "Unsupported content type", nil},
		{http.StatusUnprocessableEntity, shapeInvalid, "Request validation failed", nil},
	}
	idErrs = []errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID", nil}, {http.StatusNotFound, shapeProblem, "Not found", nil}}
	// listErrs are a list's 422s: a query that does not parse (a list of
	// violations) or a page or size below 1 (the page error).
	listErrs = []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid query", nil},
		{http.StatusUnprocessableEntity, shapeModel, "Page or size below 1", nil}}
	dbErr = errDoc{http.StatusInternalServerError, shapeDB, "Database error", nil}
)

func cat(lists ...[]errDoc) []errDoc {
	var out []errDoc
	for _, l := range lists {
		out = append(out, l...)
	}
	return out
}

// errDoc is one documented error response.
type errDoc struct {
	status int
	shape  string // a component name of the error shapes
	desc   string
	// body, when set, replaces shape: an application/json body of this
	// schema (the health status that /health sends with its 503).
	body schemaFn
}

// The component names of the five error body families (docs/http-api.md).
const (
	shapeProblem = "ProblemDetails"      // RFC 9457 problem details
	shapeDetail  = "DetailError"         // {"detail": "..."}
	shapeInvalid = "RequestInvalidError" // {"detail": [validation items]}
	shapeModel   = "ModelInvalidError"   // {"detail": "Validation error", "errors": "..."}
	shapeDB      = "DatabaseError"       // {"detail": "Database error occurred", "error": "..."}
)

var pathParam = regexp.MustCompile(`:([A-Za-z0-9_]+)`)

// openAPIPath turns an Echo route pattern into an OpenAPI path template
// and its parameter names (/tasks/:id → /tasks/{id}; * → {path}).
func openAPIPathOf(p string) (string, []string) {
	var names []string
	out := pathParam.ReplaceAllStringFunc(p, func(m string) string {
		names = append(names, m[1:])
		return "{" + m[1:] + "}"
	})
	if strings.HasSuffix(out, "*") {
		out = strings.TrimSuffix(out, "*") + "{path}"
		names = append(names, "path")
	}
	return out, names
}

var documentedMethods = map[string]bool{
	http.MethodGet: true, http.MethodPut: true, http.MethodPost: true, http.MethodDelete: true,
	http.MethodOptions: true, http.MethodHead: true, http.MethodPatch: true, http.MethodTrace: true,
}

// OpenAPI builds the OpenAPI 3.1 document of the routes registered on the
// Echo instance when it is called. Table routes carry their own
// documentation; a custom route gets a generic "Custom" entry. A route a
// permission left out is not registered, so it is not documented. It is
// safe for concurrent use.
func (s *Server) OpenAPI() *openapi.Document {
	g := s.newSchemaGen()
	// Register the schemas of left-out routes too, so the components do
	// not depend on the permissions.
	for _, d := range s.unmounted {
		d.schemas(g)
	}
	doc := &openapi.Document{
		OpenAPI: "3.1.0",
		Info:    openapi.Info{Title: s.d.Title, Version: s.d.Version, Summary: s.d.Summary, Description: s.d.Description},
		// "/" is what a reader assumes without servers; spelled out so
		// linters and generators need not assume. Relative, it keeps
		// working behind a proxy that serves the document elsewhere.
		Servers: []openapi.Server{{URL: "/"}},
		Paths:   map[string]map[string]*openapi.Operation{},
		// No credentials needed unless auth is on (set below).
		Security: []map[string][]string{},
	}
	errorShapes(g)
	auth := s.d.Auth != nil
	var exempt map[string]bool
	if auth {
		doc.Components.SecuritySchemes = map[string]openapi.SecurityScheme{"APIKeyHeader": {
			Type: "apiKey", In: "header", Name: s.d.Auth.Header,
			Description: "API key",
		}}
		doc.Security = []map[string][]string{{"APIKeyHeader": {}}}
		exempt = map[string]bool{}
		for _, p := range s.d.Auth.Exempt {
			exempt[p] = true
		}
	}
	routes := s.echo.Routes()
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].Path != routes[j].Path {
			return routes[i].Path < routes[j].Path
		}
		return routes[i].Method < routes[j].Method
	})
	tags := map[string]bool{}
	ids := map[string]int{}
	for _, r := range routes {
		if !documentedMethods[r.Method] || r.Method == http.MethodHead && s.implicitHead[r.Path] {
			continue // Echo's route-not-found entries; HEAD twins of GET routes
		}
		p, params := openAPIPathOf(r.Path)
		d, ok := s.docs[r.Method+" "+r.Path]
		if !ok {
			d = opDoc{tag: "Custom", status: http.StatusOK, contentType: "application/json", result: fixed(map[string]any{})}
		}
		body, result := d.schemas(g)
		op := &openapi.Operation{Tags: []string{d.tag}, Summary: d.summary, Responses: map[string]*openapi.Response{}}
		op.OperationID = operationID(r.Method, p)
		if n := ids[op.OperationID]; n > 0 {
			op.OperationID += "_" + string(rune('a'+n))
		}
		ids[op.OperationID]++
		tags[d.tag] = true
		for _, name := range params {
			op.Parameters = append(op.Parameters, openapi.Parameter{Name: name, In: "path", Required: true, Schema: map[string]any{"type": "string"}})
		}
		op.Parameters = append(op.Parameters, d.query...)
		if body != nil {
			op.RequestBody = &openapi.RequestBody{Required: true, Content: map[string]openapi.MediaType{"application/json": {Schema: body}}}
		}
		okResp := &openapi.Response{Description: http.StatusText(d.status)}
		if d.contentType != "" {
			okResp.Content = map[string]openapi.MediaType{d.contentType: {Schema: result}}
		}
		for ct, fn := range d.alt {
			okResp.Content[ct] = openapi.MediaType{Schema: fn(g)}
		}
		if d.location {
			okResp.Headers = map[string]openapi.Header{"Location": {Description: "Absolute URL of the created resource",
				Schema: map[string]any{"type": "string", "format": "uri"}}}
		}
		op.Responses[strconv.Itoa(d.status)] = okResp
		for _, e := range d.errs {
			addError(g, op, e)
		}
		if auth {
			if exempt[r.Path] || (exempt[docsPath] && strings.HasPrefix(r.Path, docsPath+"/")) {
				none := []map[string][]string{}
				op.Security = &none
			} else {
				addError(g, op, errDoc{status: http.StatusUnauthorized, shape: shapeProblem, desc: "Missing or invalid API key"})
			}
		}
		if s.d.Logging {
			for _, resp := range op.Responses {
				if resp.Headers == nil {
					resp.Headers = map[string]openapi.Header{}
				}
				resp.Headers[RequestIDHeader] = openapi.Header{Description: "Request id (a ULID)", Schema: map[string]any{"type": "string"}}
			}
		}
		if doc.Paths[p] == nil {
			doc.Paths[p] = map[string]*openapi.Operation{}
		}
		doc.Paths[p][strings.ToLower(r.Method)] = op
	}
	for t := range tags {
		doc.Tags = append(doc.Tags, openapi.Tag{Name: t})
	}
	sort.Slice(doc.Tags, func(i, j int) bool { return doc.Tags[i].Name < doc.Tags[j].Name })
	doc.Components.Schemas = g.defs
	return doc
}

// addError documents e on op. Several errors with one status merge: each
// media type lists its bodies, as one schema or an anyOf of them (a 400
// on $execute is problem details for a bad id and a plain detail for a
// disabled task; a list's 422 is a validation list or a page error).
func addError(g *schemaGen, op *openapi.Operation, e errDoc) {
	key := strconv.Itoa(e.status)
	ct := "application/json"
	var schema any = map[string]any{"$ref": "#/components/schemas/" + e.shape}
	switch {
	case e.body != nil:
		schema = e.body(g)
	case e.shape == shapeProblem:
		ct = "application/problem+json"
	}
	resp, ok := op.Responses[key]
	if !ok {
		op.Responses[key] = &openapi.Response{Description: e.desc, Content: map[string]openapi.MediaType{ct: {Schema: schema}}}
		return
	}
	if resp.Content == nil {
		resp.Content = map[string]openapi.MediaType{}
	}
	mt, ok := resp.Content[ct]
	if !ok {
		resp.Content[ct] = openapi.MediaType{Schema: schema}
		resp.Description += "; " + e.desc
		return
	}
	if reflect.DeepEqual(mt.Schema, schema) {
		return
	}
	var alts []any
	if m, isMap := mt.Schema.(map[string]any); isMap && len(m) == 1 && m["anyOf"] != nil {
		alts = m["anyOf"].([]any)
	} else {
		alts = []any{mt.Schema}
	}
	for _, a := range alts {
		if reflect.DeepEqual(a, schema) {
			return
		}
	}
	resp.Content[ct] = openapi.MediaType{Schema: map[string]any{"anyOf": append(alts, schema)}}
	resp.Description += "; " + e.desc
}

var nonWord = regexp.MustCompile(`[^A-Za-z0-9]+`)

func operationID(method, path string) string {
	s := nonWord.ReplaceAllString(strings.ReplaceAll(path, "$", "op_"), "_")
	return strings.ToLower(method) + "_" + strings.Trim(s, "_")
}

// errorShapes registers the body of each error family.
func errorShapes(g *schemaGen) {
	str := map[string]any{"type": "string"}
	g.schema(reflect.TypeFor[problem.Details]())
	g.defs[shapeDetail] = map[string]any{"type": "object", "title": shapeDetail,
		"properties": map[string]any{"detail": str}, "required": []string{"detail"}}
	g.defs[shapeInvalid] = map[string]any{"type": "object", "title": shapeInvalid,
		"properties": map[string]any{"detail": map[string]any{"type": "array", "items": g.schema(reflect.TypeFor[problem.Violation]())}},
		"required":   []string{"detail"}}
	g.defs[shapeModel] = map[string]any{"type": "object", "title": shapeModel,
		"properties": map[string]any{"detail": map[string]any{"const": "Validation error"}, "errors": str},
		"required":   []string{"detail", "errors"}}
	g.defs[shapeDB] = map[string]any{"type": "object", "title": shapeDB,
		"properties": map[string]any{"detail": map[string]any{"const": "Database error occurred"}, "error": str},
		"required":   []string{"detail", "error"}}
}

// schemas evaluates the body and result schemas of d with g.
func (d opDoc) schemas(g *schemaGen) (body, result any) {
	if d.body != nil {
		body = d.body(g)
	}
	if d.result != nil {
		result = d.result(g)
	}
	return body, result
}

func (s *Server) newSchemaGen() *schemaGen {
	return &schemaGen{
		defs: map[string]any{},
		names: map[reflect.Type]string{
			reflect.TypeFor[task.Out]():          "TaskOut",
			reflect.TypeFor[artifact.Out]():      "ArtifactOut",
			reflect.TypeFor[artifact.TreeNode](): "ArtifactTreeNode",
			reflect.TypeFor[job.Record]():        "JobRecord",
			reflect.TypeFor[executeResponse]():   "ExecuteResponse",
			reflect.TypeFor[problem.Details]():   shapeProblem,
			reflect.TypeFor[problem.Violation](): "ValidationItem",
			reflect.TypeFor[checkResult]():       "HealthCheckResult",
		},
		fixed: map[reflect.Type]any{
			reflect.TypeFor[job.Status](): statusSchema(),
			reflect.TypeFor[state]():      healthStateSchema(),
		},
		nullable: map[reflect.Type]map[string]bool{
			reflect.TypeFor[artifact.TreeNode](): {"children": true},
			reflect.TypeFor[artifact.Out]():      {"data": false},
		},
	}
}
