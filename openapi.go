package chapkit

import (
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/task"
)

// OpenAPIDocument is an OpenAPI 3.1 document, as [App.OpenAPI] builds it.
type OpenAPIDocument struct {
	OpenAPI    string                           `json:"openapi"`
	Info       OpenAPIInfo                      `json:"info"`
	Tags       []OpenAPITag                     `json:"tags,omitempty"`
	Paths      map[string]map[string]*Operation `json:"paths"`
	Components OpenAPIComponents                `json:"components"`
	Security   []map[string][]string            `json:"security,omitempty"`
}

// OpenAPIInfo is the info object.
type OpenAPIInfo struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
}

// OpenAPITag names a group of operations.
type OpenAPITag struct {
	Name string `json:"name"`
}

// OpenAPIComponents holds the reusable schemas and security schemes.
type OpenAPIComponents struct {
	Schemas         map[string]any            `json:"schemas,omitempty"`
	SecuritySchemes map[string]SecurityScheme `json:"securitySchemes,omitempty"`
}

// SecurityScheme is an API-key security scheme.
type SecurityScheme struct {
	Type        string `json:"type"`
	Name        string `json:"name"`
	In          string `json:"in"`
	Description string `json:"description,omitempty"`
}

// Operation is one method of one path.
type Operation struct {
	Tags        []string               `json:"tags,omitempty"`
	Summary     string                 `json:"summary,omitempty"`
	OperationID string                 `json:"operationId"`
	Parameters  []Parameter            `json:"parameters,omitempty"`
	RequestBody *RequestBody           `json:"requestBody,omitempty"`
	Responses   map[string]*Response   `json:"responses"`
	Security    *[]map[string][]string `json:"security,omitempty"`
}

// Parameter is a path or query parameter.
type Parameter struct {
	Name        string `json:"name"`
	In          string `json:"in"`
	Required    bool   `json:"required,omitempty"`
	Description string `json:"description,omitempty"`
	Schema      any    `json:"schema"`
}

// RequestBody is an operation's body.
type RequestBody struct {
	Required bool                 `json:"required,omitempty"`
	Content  map[string]MediaType `json:"content"`
}

// Response is one response of an operation.
type Response struct {
	Description string               `json:"description"`
	Headers     map[string]Header    `json:"headers,omitempty"`
	Content     map[string]MediaType `json:"content,omitempty"`
}

// Header is a response header.
type Header struct {
	Description string `json:"description,omitempty"`
	Schema      any    `json:"schema"`
}

// MediaType is the schema of one content type.
type MediaType struct {
	Schema any `json:"schema"`
}

// opDoc describes one route for the document.
type opDoc struct {
	tag, summary string
	query        []Parameter
	body         any // request body schema; nil: none
	status       int
	contentType  string // of the success response; "" for no body
	result       any    // success schema
	errs         []errDoc
}

// errDoc is one documented error response.
type errDoc struct {
	status int
	shape  string // a component name of the error shapes
	desc   string
}

// Error shapes by body family (CONTRACT §1.5).
const (
	shapeProblem = "ProblemDetails"      // A
	shapeDetail  = "DetailError"         // B
	shapeInvalid = "RequestInvalidError" // C
	shapeModel   = "ModelInvalidError"   // D
	shapeDB      = "DatabaseError"       // E
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
// app's Echo instance when it is called, custom routes included: a route
// a permission left out is not registered, so it is not documented. It is
// safe for concurrent use.
func (a *App) OpenAPI() *OpenAPIDocument {
	g := a.newSchemaGen()
	docs := a.routeDocs(g)
	version := a.info.Version
	if version == "" {
		version = "1.0.0"
	}
	doc := &OpenAPIDocument{
		OpenAPI: "3.1.0",
		Info: OpenAPIInfo{Title: a.info.DisplayName, Version: version, Summary: a.info.Summary,
			Description: orDefault(a.info.Description, a.info.Summary)},
		Paths: map[string]map[string]*Operation{},
	}
	errorShapes(g)
	auth := a.b.ops.rt != nil && a.b.ops.rt.keys != nil
	var exempt map[string]bool
	if auth {
		cfg := a.b.ops.auth.cfg
		doc.Components.SecuritySchemes = map[string]SecurityScheme{"APIKeyHeader": {
			Type: "apiKey", In: "header", Name: orDefault(cfg.HeaderName, "X-API-Key"),
			Description: "API key (CONTRACT §4.10)",
		}}
		doc.Security = []map[string][]string{{"APIKeyHeader": {}}}
		exempt = map[string]bool{}
		paths := cfg.UnauthenticatedPaths
		if len(paths) == 0 {
			paths = defaultUnauthenticatedPaths
		}
		for _, p := range paths {
			exempt[p] = true
		}
	}
	routes := a.echo.Routes()
	sort.Slice(routes, func(i, j int) bool {
		if routes[i].Path != routes[j].Path {
			return routes[i].Path < routes[j].Path
		}
		return routes[i].Method < routes[j].Method
	})
	tags := map[string]bool{}
	ids := map[string]int{}
	for _, r := range routes {
		if !documentedMethods[r.Method] {
			continue // Echo's route-not-found entries
		}
		p, params := openAPIPathOf(r.Path)
		d, ok := docs[r.Method+" "+r.Path]
		if !ok {
			d = opDoc{tag: "Custom", status: http.StatusOK, contentType: "application/json", result: map[string]any{}}
		}
		op := &Operation{Tags: []string{d.tag}, Summary: d.summary, Responses: map[string]*Response{}}
		op.OperationID = operationID(r.Method, p)
		if n := ids[op.OperationID]; n > 0 {
			op.OperationID += "_" + string(rune('a'+n))
		}
		ids[op.OperationID]++
		tags[d.tag] = true
		for _, name := range params {
			op.Parameters = append(op.Parameters, Parameter{Name: name, In: "path", Required: true, Schema: map[string]any{"type": "string"}})
		}
		op.Parameters = append(op.Parameters, d.query...)
		if d.body != nil {
			op.RequestBody = &RequestBody{Required: true, Content: map[string]MediaType{"application/json": {Schema: d.body}}}
		}
		okResp := &Response{Description: http.StatusText(d.status)}
		if d.contentType != "" {
			okResp.Content = map[string]MediaType{d.contentType: {Schema: d.result}}
		}
		op.Responses[strconv.Itoa(d.status)] = okResp
		for _, e := range d.errs {
			addError(op, e)
		}
		if auth {
			if exempt[r.Path] || (exempt[docsPath] && strings.HasPrefix(r.Path, docsPath+"/")) {
				none := []map[string][]string{}
				op.Security = &none
			} else {
				addError(op, errDoc{http.StatusUnauthorized, shapeProblem, "Missing or invalid API key"})
			}
		}
		if a.b.ops.logging {
			for _, resp := range op.Responses {
				resp.Headers = map[string]Header{RequestIDHeader: {Description: "Request id (a ULID)", Schema: map[string]any{"type": "string"}}}
			}
		}
		if doc.Paths[p] == nil {
			doc.Paths[p] = map[string]*Operation{}
		}
		doc.Paths[p][strings.ToLower(r.Method)] = op
	}
	for t := range tags {
		doc.Tags = append(doc.Tags, OpenAPITag{Name: t})
	}
	sort.Slice(doc.Tags, func(i, j int) bool { return doc.Tags[i].Name < doc.Tags[j].Name })
	doc.Components.Schemas = g.defs
	return doc
}

func addError(op *Operation, e errDoc) {
	key := strconv.Itoa(e.status)
	if _, ok := op.Responses[key]; ok {
		return
	}
	ct := "application/json"
	switch e.shape {
	case shapeProblem:
		ct = "application/problem+json"
	}
	op.Responses[key] = &Response{Description: e.desc, Content: map[string]MediaType{
		ct: {Schema: map[string]any{"$ref": "#/components/schemas/" + e.shape}},
	}}
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

func (a *App) newSchemaGen() *schemaGen {
	str := map[string]any{"type": "string"}
	strMap := nullableSchema(map[string]any{"type": "object", "additionalProperties": str})
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
			reflect.TypeFor[job.Status](): map[string]any{"type": "string", "enum": job.Statuses},
			reflect.TypeFor[ServiceInfo](): map[string]any{"type": "object", "title": "ServiceInfo",
				"properties": map[string]any{
					"display_name": str, "version": str,
					"summary": nullableSchema(str), "description": nullableSchema(str),
					"contact": strMap, "license_info": strMap,
				},
				"required":             []string{"display_name", "version"},
				"additionalProperties": true},
			reflect.TypeFor[HealthState](): map[string]any{"type": "string", "enum": []string{string(Healthy), string(Degraded), string(Unhealthy)}},
		},
		nullable: map[reflect.Type]map[string]bool{
			reflect.TypeFor[artifact.TreeNode](): {"children": true},
			reflect.TypeFor[artifact.Out]():      {"data": false},
		},
	}
}

// routeDocs describes every route the built-in options can mount, keyed by
// "METHOD pattern" with the prefixes this app uses.
func (a *App) routeDocs(g *schemaGen) map[string]opDoc {
	docs := map[string]opDoc{}
	jsonCT := "application/json"
	sse := "text/event-stream"
	of := func(v any) any { return g.schema(reflect.TypeOf(v)) }
	arr := func(v any) any { return map[string]any{"type": "array", "items": of(v)} }
	page := func(v any) any {
		return map[string]any{"anyOf": []any{arr(v), map[string]any{"type": "object", "title": "Page",
			"properties": map[string]any{"items": arr(v), "total": map[string]any{"type": "integer"},
				"page": map[string]any{"type": "integer"}, "size": map[string]any{"type": "integer"}, "pages": map[string]any{"type": "integer"}},
			"required": []string{"items", "total", "page", "size", "pages"}}}}
	}
	q := func(name, typ, desc string) Parameter {
		return Parameter{Name: name, In: "query", Description: desc, Schema: map[string]any{"type": typ}}
	}
	pageParams := []Parameter{q("page", "integer", "page number, from 1 (with size)"), q("size", "integer", "page size (with page)")}
	bodyErrs := []errDoc{
		{http.StatusRequestEntityTooLarge, shapeProblem, "Request body too large"},
		{http.StatusUnsupportedMediaType, shapeProblem, "Unsupported content type"},
		{http.StatusUnprocessableEntity, shapeInvalid, "Request validation failed"},
	}
	idErrs := []errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID"}, {http.StatusNotFound, shapeProblem, "Not found"}}
	dbErr := errDoc{http.StatusInternalServerError, shapeDB, "Database error"}
	cat := func(lists ...[]errDoc) []errDoc {
		var out []errDoc
		for _, l := range lists {
			out = append(out, l...)
		}
		return out
	}
	add := func(method, path string, d opDoc) { docs[method+" "+path] = d }

	add(http.MethodGet, "/api/v1/info", opDoc{tag: "Service", summary: "Service information", status: 200, contentType: jsonCT, result: of(ServiceInfo{})})
	if h := a.b.health; h != nil {
		p := orDefault(h.Prefix, "/health")
		healthSchema := map[string]any{"type": "object", "title": "HealthStatus",
			"properties": map[string]any{"status": of(Healthy), "checks": map[string]any{"type": "object", "additionalProperties": of(checkResult{})}},
			"required":   []string{"status"}}
		add(http.MethodGet, p, opDoc{tag: "Observability", summary: "Health status (503 when unhealthy)", status: 200, contentType: jsonCT, result: healthSchema,
			errs: []errDoc{{http.StatusServiceUnavailable, shapeDetail, "Unhealthy (body is the health status)"}}})
		add(http.MethodGet, p+"/$stream", opDoc{tag: "Observability", summary: "Health status as Server-Sent Events",
			query:  []Parameter{q("poll_interval", "number", "seconds between events (default 1)")},
			status: 200, contentType: sse, result: map[string]any{"type": "string", "description": "data: <HealthStatus JSON> events"},
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid poll_interval"}, {http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining"}}})
	}
	if a.b.system {
		p := "/api/v1/system"
		add(http.MethodGet, p, opDoc{tag: "Service", summary: "System information", status: 200, contentType: jsonCT,
			result: map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "string"}}})
		add(http.MethodGet, p+"/apps", opDoc{tag: "Service", summary: "Mounted static apps", status: 200, contentType: jsonCT, result: map[string]any{"type": "array"}})
		add(http.MethodGet, p+"/apps/$schema", opDoc{tag: "Service", summary: "JSON Schema of the app list", status: 200, contentType: jsonCT, result: map[string]any{"type": "object"}})
	}
	if j := a.b.jobs; j != nil {
		p := orDefault(j.Prefix, "/api/v1/jobs")
		notFound := errDoc{http.StatusNotFound, shapeDetail, "Job not found"}
		add(http.MethodGet, p, opDoc{tag: "Jobs", summary: "List jobs, newest first",
			query:  []Parameter{{Name: "status_filter", In: "query", Schema: of(job.StatusPending)}},
			status: 200, contentType: jsonCT, result: arr(job.Record{}),
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid status_filter"}}})
		add(http.MethodGet, p+"/$schema", opDoc{tag: "Jobs", summary: "JSON Schema of the job list", status: 200, contentType: jsonCT, result: map[string]any{"type": "object"}})
		add(http.MethodGet, p+"/:id", opDoc{tag: "Jobs", summary: "Get a job", status: 200, contentType: jsonCT, result: of(job.Record{}), errs: []errDoc{notFound}})
		add(http.MethodDelete, p+"/:id", opDoc{tag: "Jobs", summary: "Cancel (if unfinished) and delete a job", status: 204, errs: []errDoc{notFound}})
		add(http.MethodPost, p+"/:id/$cancel", opDoc{tag: "Jobs", summary: "Cancel a job and keep its record", status: 202, contentType: jsonCT, result: of(job.Record{}),
			errs: []errDoc{notFound, {http.StatusConflict, shapeDetail, "Job already finished"}}})
		add(http.MethodGet, p+"/:id/$stream", opDoc{tag: "Jobs", summary: "Job record changes as Server-Sent Events",
			query:  []Parameter{q("poll_interval", "number", "accepted and ignored")},
			status: 200, contentType: sse, result: map[string]any{"type": "string", "description": "data: <JobRecord JSON> events; data: {\"status\": \"deleted\"} when deleted"},
			errs: []errDoc{{http.StatusBadRequest, shapeDetail, "Invalid job id"}, notFound, {http.StatusServiceUnavailable, shapeProblem, "Too many streams or draining"}}})
	}
	if ac := a.b.artifacts; ac != nil {
		p := orDefault(ac.Prefix, "/api/v1/artifacts")
		in := map[string]any{"type": "object", "title": "ArtifactIn", "properties": map[string]any{
			"id": nullableSchema(map[string]any{"type": "string"}), "parent_id": nullableSchema(map[string]any{"type": "string"}),
			"data": map[string]any{}, "level": map[string]any{"type": "integer"}}, "required": []string{"data"}}
		out := of(artifact.Out{})
		add(http.MethodPost, p, opDoc{tag: "Artifacts", summary: "Create an artifact", body: in, status: 201, contentType: jsonCT, result: out,
			errs: cat(bodyErrs, []errDoc{dbErr})})
		add(http.MethodGet, p, opDoc{tag: "Artifacts", summary: "List artifacts", query: pageParams, status: 200, contentType: jsonCT, result: page(artifact.Out{}),
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid page or size"}}})
		add(http.MethodGet, p+"/$schema", opDoc{tag: "Artifacts", summary: "JSON Schema of an artifact", status: 200, contentType: jsonCT, result: map[string]any{"type": "object"}})
		add(http.MethodGet, p+"/:id", opDoc{tag: "Artifacts", summary: "Get an artifact", status: 200, contentType: jsonCT, result: out, errs: idErrs})
		add(http.MethodPut, p+"/:id", opDoc{tag: "Artifacts", summary: "Replace an artifact", body: in, status: 200, contentType: jsonCT, result: out, errs: cat(bodyErrs, idErrs, []errDoc{dbErr})})
		add(http.MethodDelete, p+"/:id", opDoc{tag: "Artifacts", summary: "Delete an artifact", status: 204, errs: idErrs})
		treeErrs := []errDoc{{http.StatusBadRequest, shapeProblem, "Invalid ULID"}, {http.StatusNotFound, shapeDetail, "Not found"}}
		add(http.MethodGet, p+"/:id/$expand", opDoc{tag: "Artifacts", summary: "Artifact with its hierarchy labels", status: 200, contentType: jsonCT, result: of(artifact.TreeNode{}), errs: treeErrs})
		add(http.MethodGet, p+"/:id/$tree", opDoc{tag: "Artifacts", summary: "Artifact with all its descendants", status: 200, contentType: jsonCT, result: of(artifact.TreeNode{}), errs: treeErrs})
	}
	if tc := a.b.tasks; tc != nil {
		p := orDefault(tc.Prefix, "/api/v1/tasks")
		in := map[string]any{"type": "object", "title": "TaskIn", "properties": map[string]any{
			"id":              nullableSchema(map[string]any{"type": "string"}),
			"command":         map[string]any{"type": "string"},
			"task_type":       map[string]any{"type": "string", "enum": []string{task.TypeShell, task.TypePython, task.TypeFunction}},
			"parameters":      nullableSchema(map[string]any{"type": "object"}),
			"enabled":         map[string]any{"type": "boolean"},
			"timeout_seconds": nullableSchema(map[string]any{"type": "integer"}),
		}, "required": []string{"command"}}
		out := of(task.Out{})
		add(http.MethodPost, p, opDoc{tag: "Tasks", summary: "Create a task", body: in, status: 201, contentType: jsonCT, result: out,
			errs: cat(bodyErrs, []errDoc{{http.StatusConflict, shapeProblem, "Conflict"}, dbErr})})
		add(http.MethodGet, p, opDoc{tag: "Tasks", summary: "List tasks",
			query:  append([]Parameter{q("enabled", "boolean", "only enabled (true) or disabled (false) tasks")}, pageParams...),
			status: 200, contentType: jsonCT, result: page(task.Out{}),
			errs: []errDoc{{http.StatusUnprocessableEntity, shapeInvalid, "Invalid query"}}})
		add(http.MethodGet, p+"/$schema", opDoc{tag: "Tasks", summary: "JSON Schema of a task", status: 200, contentType: jsonCT, result: map[string]any{"type": "object"}})
		add(http.MethodGet, p+"/:id", opDoc{tag: "Tasks", summary: "Get a task", status: 200, contentType: jsonCT, result: out, errs: idErrs})
		add(http.MethodPut, p+"/:id", opDoc{tag: "Tasks", summary: "Replace a task", body: in, status: 200, contentType: jsonCT, result: out, errs: cat(bodyErrs, idErrs, []errDoc{dbErr})})
		add(http.MethodPatch, p+"/:id", opDoc{tag: "Tasks", summary: "Change some fields of a task (JSON merge patch, RFC 7396)",
			body: map[string]any{"type": "object"}, status: 200, contentType: jsonCT, result: out, errs: cat(bodyErrs, idErrs, []errDoc{dbErr})})
		add(http.MethodDelete, p+"/:id", opDoc{tag: "Tasks", summary: "Delete a task", status: 204, errs: idErrs})
		add(http.MethodPost, p+"/:id/$execute", opDoc{tag: "Tasks", summary: "Execute a task as a background job", status: 202, contentType: jsonCT, result: of(executeResponse{}),
			errs: []errDoc{{http.StatusBadRequest, shapeDetail, "Task not found or disabled"},
				{http.StatusServiceUnavailable, shapeProblem, "Draining or too many pending jobs"}}})
	}
	if m := a.b.ops.monitoring; m != nil {
		add(http.MethodGet, orDefault(m.Prefix, "/metrics"), opDoc{tag: "Observability", summary: "Prometheus metrics", status: 200,
			contentType: "text/plain", result: map[string]any{"type": "string"}})
	}
	if a.b.ops.docs {
		add(http.MethodGet, openAPIPath, opDoc{tag: "Docs", summary: "This OpenAPI document", status: 200, contentType: jsonCT, result: map[string]any{"type": "object"}})
		add(http.MethodGet, docsPath, opDoc{tag: "Docs", summary: "Interactive API documentation", status: 200, contentType: "text/html", result: map[string]any{"type": "string"}})
		add(http.MethodGet, docsPath+"/:asset", opDoc{tag: "Docs", summary: "Scripts and styles of the documentation page", status: 200,
			contentType: "application/octet-stream", result: map[string]any{"type": "string"},
			errs: []errDoc{{http.StatusNotFound, shapeDetail, "No such asset"}}})
	}
	return docs
}
