// Package openapi holds the model of the OpenAPI 3.1 document a chapkit
// service describes itself with (App.OpenAPI, GET /openapi.json). The
// types only carry data and marshal to the document's JSON; the generator
// that fills them lives with the HTTP layer. A program changes a document
// by editing these values, for example to describe its own routes in
// more detail than the generic entry they get.
package openapi

import "encoding/json"

// Document is an OpenAPI 3.1 document, as chapkit.App.OpenAPI builds it.
type Document struct {
	OpenAPI    string                           `json:"openapi"`
	Info       Info                             `json:"info"`
	Servers    []Server                         `json:"servers,omitempty"`
	Tags       []Tag                            `json:"tags,omitempty"`
	Paths      map[string]map[string]*Operation `json:"paths"`
	Components Components                       `json:"components"`
	// Security is the requirement of every operation that has none of its
	// own. Nil leaves the key out; an empty, non-nil list is sent as []:
	// no operation needs credentials (said explicitly, so that a reader
	// or linter does not have to guess).
	Security []map[string][]string `json:"security,omitempty"`
}

// MarshalJSON writes d, sending an empty, non-nil Security as [] where
// the field's omitempty would drop it.
func (d Document) MarshalJSON() ([]byte, error) {
	type plain Document
	out := struct {
		plain
		Security *[]map[string][]string `json:"security,omitempty"`
	}{plain: plain(d)}
	if d.Security != nil {
		out.Security = &d.Security
	}
	return json.Marshal(out)
}

// Server is a base URL of the API. A relative URL is resolved against the
// URL the document was fetched from.
type Server struct {
	URL         string `json:"url"`
	Description string `json:"description,omitempty"`
}

// Info is the info object.
type Info struct {
	Title       string `json:"title"`
	Version     string `json:"version"`
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
}

// Tag names a group of operations.
type Tag struct {
	Name string `json:"name"`
}

// Components holds the reusable schemas and security schemes.
type Components struct {
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
