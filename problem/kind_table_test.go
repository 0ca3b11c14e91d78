package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKindTable pins every kind's status, type and title: these reach
// clients, so a change must be deliberate.
func TestKindTable(t *testing.T) {
	tests := []struct {
		kind   Kind
		status int
		urn    string
		title  string
	}{
		{KindInternal, http.StatusInternalServerError, "urn:chapkit:error:internal", "Internal Server Error"},
		{KindNotFound, http.StatusNotFound, "urn:chapkit:error:not-found", "Resource Not Found"},
		{KindConflict, http.StatusConflict, "urn:chapkit:error:conflict", "Resource Conflict"},
		{KindInvalidULID, http.StatusBadRequest, "urn:chapkit:error:invalid-ulid", "Invalid ULID Format"},
		{KindValidation, http.StatusBadRequest, "urn:chapkit:error:validation-failed", "Validation Failed"},
		{KindBadRequest, http.StatusBadRequest, "urn:chapkit:error:bad-request", "Bad Request"},
		{KindUnauthorized, http.StatusUnauthorized, "urn:chapkit:error:unauthorized", "Unauthorized"},
		{KindForbidden, http.StatusForbidden, "urn:chapkit:error:forbidden", "Forbidden"},
		{KindUnavailable, http.StatusServiceUnavailable, "urn:chapkit:error:service-unavailable", "Service Unavailable"},
		{KindUnsupportedMediaType, http.StatusUnsupportedMediaType, "urn:chapkit:error:unsupported-media-type", "Unsupported Media Type"},
		{KindTooLarge, http.StatusRequestEntityTooLarge, "urn:chapkit:error:payload-too-large", "Payload Too Large"},
		{KindRequestInvalid, http.StatusUnprocessableEntity, "urn:chapkit:error:validation-failed", "Validation Failed"},
		{KindModelInvalid, http.StatusUnprocessableEntity, "urn:chapkit:error:validation-failed", "Validation Failed"},
		{KindDatabase, http.StatusInternalServerError, "urn:chapkit:error:internal", "Internal Server Error"},
		// A kind outside the table is treated as internal, never as 200.
		{Kind(250), http.StatusInternalServerError, "urn:chapkit:error:internal", "Internal Server Error"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("kind %d", tt.kind), func(t *testing.T) {
			got := []any{tt.kind.Status(), tt.kind.Type(), tt.kind.Title()}
			want := []any{tt.status, tt.urn, tt.title}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("status, type, title (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEveryKindIsInTheTable fails when a kind is added without a row.
func TestEveryKindIsInTheTable(t *testing.T) {
	for k := KindInternal; k <= KindDatabase; k++ {
		if _, ok := kinds[k]; !ok {
			t.Errorf("kind %d has no entry in the kind table", k)
		}
	}
}

// TestProblemDetails checks the body of the problem details family: the
// error's own instance wins, and empty members are left out.
func TestProblemDetails(t *testing.T) {
	tests := []struct {
		name     string
		err      *Error
		instance string
		want     string
	}{
		{"request URL as instance", NotFound("op", "Task %s not found", "x"), "http://h/api/v1/tasks/x",
			`{"type":"urn:chapkit:error:not-found","title":"Resource Not Found","status":404,"detail":"Task x not found","instance":"http://h/api/v1/tasks/x"}`},
		{"own instance wins", &Error{Kind: KindUnauthorized, Detail: "Invalid API key", Instance: "/api/v1/tasks"}, "http://h/api/v1/tasks",
			`{"type":"urn:chapkit:error:unauthorized","title":"Unauthorized","status":401,"detail":"Invalid API key","instance":"/api/v1/tasks"}`},
		{"empty members left out", &Error{Kind: KindConflict}, "",
			`{"type":"urn:chapkit:error:conflict","title":"Resource Conflict","status":409}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.err.ProblemDetails(tt.instance))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(b)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKindOf finds the kind through wrapping and defaults to internal.
func TestKindOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Kind
	}{
		{"plain error", errors.New("boom"), KindInternal},
		{"problem", Conflict("op", "taken"), KindConflict},
		{"wrapped problem", fmt.Errorf("context: %w", Unavailable("op", 5, "full")), KindUnavailable},
		{"database", Database("op", errors.New("disk I/O error")), KindDatabase},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := KindOf(tt.err); got != tt.want {
				t.Errorf("KindOf = %d, want %d", got, tt.want)
			}
			if !Is(tt.err, tt.want) && tt.want != KindInternal {
				t.Errorf("Is(err, %d) = false", tt.want)
			}
		})
	}
}
