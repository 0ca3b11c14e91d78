// Package problem defines the single error type every chapkit package
// returns, and the one table that maps an error kind to the HTTP status,
// problem type URN and title chapkit clients expect (docs/http-api.md).
//
// Domain code says what went wrong (a [Kind] and a client-facing detail);
// the HTTP layer alone decides how the error is rendered.
package problem

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
)

// Kind classifies an error. The zero value is [KindInternal], so an error
// built without a kind fails safe as a 500.
type Kind uint8

// The kinds. Each maps to exactly one status in [Kind.Status].
const (
	KindInternal Kind = iota
	KindNotFound
	KindConflict
	KindInvalidULID
	KindValidation
	KindBadRequest
	KindUnauthorized
	KindForbidden
	KindUnavailable
	KindUnsupportedMediaType
	KindTooLarge
	// KindRequestInvalid is a request body or query that failed validation:
	// a 422 whose body lists the violations (family C).
	KindRequestInvalid
	// KindModelInvalid is a response model that could not be built from
	// valid input, such as a page below 1: a 422 {"detail":"Validation
	// error","errors":...} (family D).
	KindModelInvalid
	// KindDatabase is a storage failure that escaped a manager: a 500 that
	// carries the driver's text (family E).
	KindDatabase
)

type kindInfo struct {
	urn    string
	title  string
	status int
}

// kinds is the only Kind → (type, title, status) table in the module.
var kinds = map[Kind]kindInfo{
	KindInternal:             {"urn:chapkit:error:internal", "Internal Server Error", http.StatusInternalServerError},
	KindNotFound:             {"urn:chapkit:error:not-found", "Resource Not Found", http.StatusNotFound},
	KindConflict:             {"urn:chapkit:error:conflict", "Resource Conflict", http.StatusConflict},
	KindInvalidULID:          {"urn:chapkit:error:invalid-ulid", "Invalid ULID Format", http.StatusBadRequest},
	KindValidation:           {"urn:chapkit:error:validation-failed", "Validation Failed", http.StatusBadRequest},
	KindBadRequest:           {"urn:chapkit:error:bad-request", "Bad Request", http.StatusBadRequest},
	KindUnauthorized:         {"urn:chapkit:error:unauthorized", "Unauthorized", http.StatusUnauthorized},
	KindForbidden:            {"urn:chapkit:error:forbidden", "Forbidden", http.StatusForbidden},
	KindUnavailable:          {"urn:chapkit:error:service-unavailable", "Service Unavailable", http.StatusServiceUnavailable},
	KindUnsupportedMediaType: {"urn:chapkit:error:unsupported-media-type", "Unsupported Media Type", http.StatusUnsupportedMediaType},
	KindTooLarge:             {"urn:chapkit:error:payload-too-large", "Payload Too Large", http.StatusRequestEntityTooLarge},
	KindRequestInvalid:       {"urn:chapkit:error:validation-failed", "Validation Failed", http.StatusUnprocessableEntity},
	KindModelInvalid:         {"urn:chapkit:error:validation-failed", "Validation Failed", http.StatusUnprocessableEntity},
	KindDatabase:             {"urn:chapkit:error:internal", "Internal Server Error", http.StatusInternalServerError},
}

func (k Kind) info() kindInfo {
	if i, ok := kinds[k]; ok {
		return i
	}
	return kinds[KindInternal]
}

// Status is the HTTP status of the kind.
func (k Kind) Status() int { return k.info().status }

// Type is the problem type URN of the kind.
func (k Kind) Type() string { return k.info().urn }

// Title is the problem title of the kind.
func (k Kind) Title() string { return k.info().title }

// Violation is one item of a 422 request-validation body (family C), in the
// FastAPI layout chapkit clients parse.
type Violation struct {
	Type  string         `json:"type"`
	Loc   []any          `json:"loc"`
	Msg   string         `json:"msg"`
	Input any            `json:"input"`
	Ctx   map[string]any `json:"ctx,omitempty"`
}

// Error is the error type of the module. It is a plain value: safe to share
// once built, never mutated by the HTTP layer.
type Error struct {
	Kind Kind
	// Op names the operation that failed ("task.Manager.Execute"); logs only.
	Op string
	// Detail is the client-facing text, worded as chapkit clients expect it.
	Detail string
	// Instance overrides the problem instance; empty means the request URL.
	Instance string
	// Items are the violations of a [KindRequestInvalid] error.
	Items []Violation
	// RetryAfter, when positive, is sent as a Retry-After header (seconds).
	RetryAfter int
	// Extensions are extra members kept on the value; they are not rendered.
	Extensions map[string]any
	// Err is the cause. It is logged, and rendered only for KindDatabase.
	Err error
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Detail
	if msg == "" && e.Err != nil {
		msg = e.Err.Error()
	}
	if e.Op != "" {
		msg = e.Op + ": " + msg
	}
	if e.Err != nil && e.Detail != "" {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New builds an error of kind k with a formatted client detail.
func New(k Kind, op, format string, args ...any) *Error {
	return &Error{Kind: k, Op: op, Detail: fmt.Sprintf(format, args...)}
}

// Wrap builds an error of kind k around a cause.
func Wrap(k Kind, op string, err error, format string, args ...any) *Error {
	return &Error{Kind: k, Op: op, Detail: fmt.Sprintf(format, args...), Err: err}
}

// NotFound is New(KindNotFound, ...).
func NotFound(op, format string, args ...any) *Error { return New(KindNotFound, op, format, args...) }

// BadRequest is New(KindBadRequest, ...).
func BadRequest(op, format string, args ...any) *Error {
	return New(KindBadRequest, op, format, args...)
}

// Conflict is New(KindConflict, ...).
func Conflict(op, format string, args ...any) *Error { return New(KindConflict, op, format, args...) }

// InvalidULID is the 400 for a path id that is not a ULID.
func InvalidULID(op, raw string) *Error {
	return New(KindInvalidULID, op, "Invalid ULID format: %s", raw)
}

// DatabaseBusyDetail is the client text of a temporary storage failure.
const DatabaseBusyDetail = "The database is busy or unavailable; retry later"

// Database wraps a storage error for the client. A temporary failure (see
// [Temporary]: locked or busy, unreachable, or out of time) is
// KindUnavailable, a 503 with Retry-After [DatabaseRetryAfter] and the
// fixed detail [DatabaseBusyDetail]; the client must not be told to fix a
// request that was fine. Anything else is KindDatabase, the 500 that
// carries the driver's text (family E). In both cases op goes to logs only.
func Database(op string, err error) *Error {
	if Temporary(err) {
		return &Error{Kind: KindUnavailable, Op: op, Detail: DatabaseBusyDetail, RetryAfter: DatabaseRetryAfter, Err: err}
	}
	return &Error{Kind: KindDatabase, Op: op, Detail: "Database error occurred", Err: err}
}

// Invalid is a 422 request-validation error with the given violations.
func Invalid(op string, items ...Violation) *Error {
	return &Error{Kind: KindRequestInvalid, Op: op, Detail: "Validation error", Items: items}
}

// Unavailable is a 503 with a Retry-After header.
func Unavailable(op string, retryAfter int, format string, args ...any) *Error {
	e := New(KindUnavailable, op, format, args...)
	e.RetryAfter = retryAfter
	return e
}

// KindOf returns the kind of the first *Error in err's chain, or
// KindInternal when there is none.
func KindOf(err error) Kind {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return KindInternal
}

// Is reports whether err carries a *Error of kind k.
func Is(err error, k Kind) bool {
	var pe *Error
	return errors.As(err, &pe) && pe.Kind == k
}

// Details is the RFC 9457 body (family A). Members with empty values are
// omitted, as chapkit omits null members.
type Details struct {
	Type     string `json:"type"`
	Title    string `json:"title"`
	Status   int    `json:"status"`
	Detail   string `json:"detail,omitempty"`
	Instance string `json:"instance,omitempty"`
}

// ProblemDetails renders e as a family A body; instance is used when e has
// none of its own.
func (e *Error) ProblemDetails(instance string) Details {
	if e.Instance != "" {
		instance = e.Instance
	}
	return Details{Type: e.Kind.Type(), Title: e.Kind.Title(), Status: e.Kind.Status(), Detail: e.Detail, Instance: instance}
}

// ErrorType names an error the way chapkit reports it ("ValueError",
// "PathError"): the ErrorType() method of the first error in the chain that
// has one, else the dynamic type name of err without pointer and package
// (the error_type a job record reports). It returns "" for nil.
func ErrorType(err error) string {
	if err == nil {
		return ""
	}
	var typed interface{ ErrorType() string }
	if errors.As(err, &typed) {
		if t := typed.ErrorType(); t != "" {
			return t
		}
	}
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if name := t.Name(); name != "" {
		return name
	}
	return t.String() // an unnamed type, such as a struct literal type
}
