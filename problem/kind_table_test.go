package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

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
