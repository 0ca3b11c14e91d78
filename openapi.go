package chapkit

import "github.com/chapkit-go/chapkit/openapi"

// The OpenAPI model types moved to package openapi; these aliases keep
// code that names them here compiling.
type (
	// Deprecated: use openapi.Document.
	OpenAPIDocument = openapi.Document
	// Deprecated: use openapi.Info.
	OpenAPIInfo = openapi.Info
	// Deprecated: use openapi.Tag.
	OpenAPITag = openapi.Tag
	// Deprecated: use openapi.Components.
	OpenAPIComponents = openapi.Components
	// Deprecated: use openapi.SecurityScheme.
	SecurityScheme = openapi.SecurityScheme
	// Deprecated: use openapi.Operation.
	Operation = openapi.Operation
	// Deprecated: use openapi.Parameter.
	Parameter = openapi.Parameter
	// Deprecated: use openapi.RequestBody.
	RequestBody = openapi.RequestBody
	// Deprecated: use openapi.Response.
	Response = openapi.Response
	// Deprecated: use openapi.Header.
	Header = openapi.Header
	// Deprecated: use openapi.MediaType.
	MediaType = openapi.MediaType
)
