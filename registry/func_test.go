package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/chapkit-go/chapkit/inject"
)

type sumParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

type defaultsParams struct {
	ShouldFail  bool    `json:"should_fail" default:"true"`
	Seconds     int     `json:"seconds" default:"2"`
	Destination string  `json:"destination" default:"\"/backups\""`
	Label       *string `json:"label"`
	Note        string  `json:"note,omitempty"`
}

type Common struct {
	Verbose bool `json:"verbose,omitempty"`
	Region  string
}

type embeddedParams struct {
	Common
	Name   string `json:"name"`
	Hidden string `json:"-"`
	secret string // unexported fields are not parameters
}

// echoTask returns its bound parameters so tests can compare them.
func echoTask[P any](r *Registry, name string) {
	MustRegister(r, name, func(_ context.Context, p P) (P, error) { return p, nil })
}

func decodeErr[P any](raw string) string {
	var p P
	return json.Unmarshal([]byte(raw), &p).Error()
}

// ignoreTraceback compares CallErrors without their stack text, which is
// checked separately for being non-empty.
var ignoreTraceback = cmpopts.IgnoreFields(CallError{}, "Traceback")

func TestCallBinding(t *testing.T) {
	r := New()
	echoTask[sumParams](r, "sum")
	echoTask[defaultsParams](r, "defaults")
	echoTask[noParams](r, "none")
	echoTask[map[string]any](r, "whole")
	echoTask[embeddedParams](r, "embedded")

	label := "x"
	tests := []struct {
		name    string
		fn      string
		params  string
		want    any
		wantErr *CallError
	}{
		{
			name:   "required present",
			fn:     "sum",
			params: `{"a":15,"b":27}`,
			want:   sumParams{A: 15, B: 27},
		},
		{
			name:    "required missing",
			fn:      "sum",
			params:  `{"b":1}`,
			wantErr: &CallError{Type: "ValueError", Message: "Missing required parameter 'a' for task function. Parameter is not injectable and not provided in task.parameters."},
		},
		{
			name:    "first missing in field order",
			fn:      "sum",
			params:  `{}`,
			wantErr: &CallError{Type: "ValueError", Message: "Missing required parameter 'a' for task function. Parameter is not injectable and not provided in task.parameters."},
		},
		{
			name:    "missing wins over unknown",
			fn:      "sum",
			params:  `{"a":1,"zz":2}`,
			wantErr: &CallError{Type: "ValueError", Message: "Missing required parameter 'b' for task function. Parameter is not injectable and not provided in task.parameters."},
		},
		{
			name:    "unknown key, first sorted",
			fn:      "sum",
			params:  `{"a":1,"b":2,"zeta":3,"c":4}`,
			wantErr: &CallError{Type: "TypeError", Message: "unexpected parameter 'c'"},
		},
		{
			name:    "keys match exactly",
			fn:      "sum",
			params:  `{"a":1,"b":2,"A":3}`,
			wantErr: &CallError{Type: "TypeError", Message: "unexpected parameter 'A'"},
		},
		{
			name:    "wrong JSON type",
			fn:      "sum",
			params:  `{"a":"15","b":27}`,
			wantErr: &CallError{Type: "TypeError", Message: decodeErr[sumParams](`{"a":"15","b":27}`)},
		},
		{
			name:    "fraction into int",
			fn:      "sum",
			params:  `{"a":1.5,"b":27}`,
			wantErr: &CallError{Type: "TypeError", Message: decodeErr[sumParams](`{"a":1.5,"b":27}`)},
		},
		{
			name:    "string into bool",
			fn:      "defaults",
			params:  `{"should_fail":"x"}`,
			wantErr: &CallError{Type: "TypeError", Message: decodeErr[defaultsParams](`{"should_fail":"x"}`)},
		},
		{
			name:   "defaults applied",
			fn:     "defaults",
			params: `{}`,
			want:   defaultsParams{ShouldFail: true, Seconds: 2, Destination: "/backups"},
		},
		{
			name:   "defaults overridden",
			fn:     "defaults",
			params: `{"should_fail":false,"seconds":5,"destination":"/tmp","label":"x","note":"n"}`,
			want:   defaultsParams{ShouldFail: false, Seconds: 5, Destination: "/tmp", Label: &label, Note: "n"},
		},
		{
			name:   "null params",
			fn:     "defaults",
			params: `null`,
			want:   defaultsParams{ShouldFail: true, Seconds: 2, Destination: "/backups"},
		},
		{
			name:   "empty params",
			fn:     "none",
			params: ``,
			want:   noParams{},
		},
		{
			name:    "struct{} with extra key",
			fn:      "none",
			params:  `{"unexpected":1}`,
			wantErr: &CallError{Type: "TypeError", Message: "unexpected parameter 'unexpected'"},
		},
		{
			name:    "array params",
			fn:      "none",
			params:  `[1,2]`,
			wantErr: &CallError{Type: "TypeError", Message: "task parameters must be a JSON object"},
		},
		{
			name:    "invalid JSON",
			fn:      "whole",
			params:  `{"a":`,
			wantErr: &CallError{Type: "TypeError", Message: "task parameters must be a JSON object"},
		},
		{
			name:    "string params",
			fn:      "whole",
			params:  `"text"`,
			wantErr: &CallError{Type: "TypeError", Message: "task parameters must be a JSON object"},
		},
		{
			name:   "map receives everything",
			fn:     "whole",
			params: `{"a":1,"nested":{"b":[true,null]}}`,
			want:   map[string]any{"a": 1.0, "nested": map[string]any{"b": []any{true, nil}}},
		},
		{
			name:   "map with null params",
			fn:     "whole",
			params: `null`,
			want:   map[string]any{},
		},
		{
			name:   "embedded struct flattened",
			fn:     "embedded",
			params: `{"name":"n","Region":"eu","verbose":true}`,
			want:   embeddedParams{Common: Common{Verbose: true, Region: "eu"}, Name: "n"},
		},
		{
			name:    "embedded required field",
			fn:      "embedded",
			params:  `{"name":"n"}`,
			wantErr: &CallError{Type: "ValueError", Message: "Missing required parameter 'Region' for task function. Parameter is not injectable and not provided in task.parameters."},
		},
		{
			name:    "skipped and unexported fields are not parameters",
			fn:      "embedded",
			params:  `{"name":"n","Region":"eu","Hidden":"h"}`,
			wantErr: &CallError{Type: "TypeError", Message: "unexpected parameter 'Hidden'"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := r.Lookup(tc.fn)
			if err != nil {
				t.Fatal(err)
			}
			got, cerr := f.Call(t.Context(), json.RawMessage(tc.params), nil)
			if diff := cmp.Diff(tc.wantErr, cerr, ignoreTraceback); diff != "" {
				t.Errorf("CallError mismatch (-want +got):\n%s", diff)
			}
			if cerr != nil && cerr.Traceback == "" {
				t.Error("CallError has no traceback")
			}
			if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(embeddedParams{})); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCallBindingSkipsFunction(t *testing.T) {
	r := New()
	called := false
	MustRegister(r, "guarded", func(context.Context, sumParams) (int, error) {
		called = true
		return 0, nil
	})
	f, _ := r.Lookup("guarded")
	if _, cerr := f.Call(t.Context(), []byte(`{"a":1}`), nil); cerr == nil {
		t.Fatal("Call with a missing parameter succeeded")
	}
	if called {
		t.Error("function ran although binding failed")
	}
}

type jobKey struct{}

func TestCallInjection(t *testing.T) {
	type deps struct {
		DB    *gormDB
		Store artifactStore `inject:"optional"`
		Sched *scheduler    `inject:"optional"`
		skip  *gormDB       // unexported: never injected
	}
	type result struct {
		JobID     any
		SameCtx   bool
		HasStore  bool
		HasSched  bool
		SkipIsNil bool
	}
	sched := &scheduler{}
	r := New()
	MustRegisterWith(r, "query_task_count", func(ctx context.Context, _ noParams, d deps) (result, error) {
		return result{
			JobID:     d.DB.ctx.Value(jobKey{}),
			SameCtx:   d.DB.ctx == ctx,
			HasStore:  d.Store != nil,
			HasSched:  d.Sched == sched,
			SkipIsNil: d.skip == nil,
		}, nil
	})
	f, _ := r.Lookup("query_task_count")

	c := inject.New()
	if err := inject.ProvideFunc(c, func(ctx context.Context) (*gormDB, error) {
		return &gormDB{ctx: ctx}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := inject.Provide(c, sched); err != nil {
		t.Fatal(err)
	}
	c.Freeze()

	for _, job := range []string{"job-1", "job-2"} {
		ctx := context.WithValue(t.Context(), jobKey{}, job)
		got, cerr := f.Call(ctx, nil, c)
		if cerr != nil {
			t.Fatal(cerr)
		}
		want := result{JobID: job, SameCtx: true, HasStore: false, HasSched: true, SkipIsNil: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Call mismatch (-want +got):\n%s", diff)
		}
	}

	t.Run("required missing", func(t *testing.T) {
		_, cerr := f.Call(t.Context(), nil, inject.New())
		want := &CallError{Type: "InjectionError", Message: "inject: no value of type *registry.gormDB is provided (provided: none)"}
		if diff := cmp.Diff(want, cerr, ignoreTraceback); diff != "" {
			t.Errorf("CallError mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("nil container", func(t *testing.T) {
		_, cerr := f.Call(t.Context(), nil, nil)
		if cerr == nil || cerr.Type != "InjectionError" {
			t.Errorf("CallError = %v, want InjectionError", cerr)
		}
	})

	t.Run("provider error", func(t *testing.T) {
		c := inject.New()
		if err := inject.ProvideFunc(c, func(context.Context) (*gormDB, error) {
			return nil, errors.New("database is closed")
		}); err != nil {
			t.Fatal(err)
		}
		_, cerr := f.Call(t.Context(), nil, c)
		want := &CallError{Type: "InjectionError", Message: "inject: provide *registry.gormDB: database is closed"}
		if diff := cmp.Diff(want, cerr, ignoreTraceback); diff != "" {
			t.Errorf("CallError mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("parameters are bound before injection", func(t *testing.T) {
		_, cerr := f.Call(t.Context(), []byte(`{"x":1}`), nil)
		if cerr == nil || cerr.Type != "TypeError" {
			t.Errorf("CallError = %v, want TypeError", cerr)
		}
	})
}

func TestCallFailures(t *testing.T) {
	r := New()
	MustRegister(r, "fail", func(context.Context, noParams) (any, error) {
		return nil, NewError("ValueError", "This task was designed to fail")
	})
	MustRegister(r, "fs_fail", func(context.Context, noParams) (int, error) {
		_, err := os.Open("/nonexistent/chapkit")
		return 0, fmt.Errorf("open input: %w", err)
	})
	MustRegister(r, "panics", func(context.Context, noParams) (int, error) {
		var m map[string]int
		m["boom"] = 1
		return 0, nil
	})
	MustRegister(r, "panics_value", func(context.Context, noParams) (int, error) {
		panic(fmt.Sprintf("bad state %d", 7))
	})
	MustRegisterWith(r, "provider_panics", func(context.Context, noParams, struct{ DB *gormDB }) (int, error) {
		return 0, nil
	})
	c := inject.New()
	if err := inject.ProvideFunc(c, func(context.Context) (*gormDB, error) { panic("provider exploded") }); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		fn        string
		wantErr   *CallError
		wantStack string
	}{
		{
			name:      "returned typed error",
			fn:        "fail",
			wantErr:   &CallError{Type: "ValueError", Message: "This task was designed to fail"},
			wantStack: "runtime/debug.Stack",
		},
		{
			name:      "returned wrapped error",
			fn:        "fs_fail",
			wantErr:   &CallError{Type: "wrapError", Message: "open input: open /nonexistent/chapkit: no such file or directory"},
			wantStack: "runtime/debug.Stack",
		},
		{
			name:      "runtime panic",
			fn:        "panics",
			wantErr:   &CallError{Type: "panic", Message: "assignment to entry in nil map"},
			wantStack: "func_test.go",
		},
		{
			name:      "panic with value",
			fn:        "panics_value",
			wantErr:   &CallError{Type: "panic", Message: "bad state 7"},
			wantStack: "func_test.go",
		},
		{
			name:      "provider panic",
			fn:        "provider_panics",
			wantErr:   &CallError{Type: "panic", Message: "provider exploded"},
			wantStack: "func_test.go",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, _ := r.Lookup(tc.fn)
			got, cerr := f.Call(t.Context(), nil, c)
			if got != nil {
				t.Errorf("result = %v, want nil", got)
			}
			if diff := cmp.Diff(tc.wantErr, cerr, ignoreTraceback); diff != "" {
				t.Errorf("CallError mismatch (-want +got):\n%s", diff)
			}
			if cerr != nil && !strings.Contains(cerr.Traceback, tc.wantStack) {
				t.Errorf("Traceback does not mention %q:\n%s", tc.wantStack, cerr.Traceback)
			}
		})
	}
}

func TestCallErrorJSON(t *testing.T) {
	e := &CallError{Type: "ValueError", Message: "m", Traceback: "t"}
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(`{"type":"ValueError","message":"m","traceback":"t"}`, string(b)); diff != "" {
		t.Errorf("JSON mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("ValueError: m", e.Error()); diff != "" {
		t.Errorf("Error mismatch (-want +got):\n%s", diff)
	}
}

type valueErr struct{}

func (valueErr) Error() string { return "value receiver" }

type customTyped struct{ error }

func (customTyped) ErrorType() string { return "KeyError" }

func TestErrorType(t *testing.T) {
	_, pathErr := os.Open("/nonexistent/chapkit")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: ""},
		{name: "errors.New", err: errors.New("x"), want: "errorString"},
		{name: "PathError", err: pathErr, want: "PathError"},
		{name: "PathError literal", err: &fs.PathError{Op: "open", Path: "p", Err: fs.ErrNotExist}, want: "PathError"},
		{name: "fmt wrap uses the outer type", err: fmt.Errorf("ctx: %w", pathErr), want: "wrapError"},
		{name: "value receiver", err: valueErr{}, want: "valueErr"},
		{name: "NewError", err: NewError("ValueError", "bad"), want: "ValueError"},
		{name: "NewError wrapped", err: fmt.Errorf("step 2: %w", NewError("RuntimeError", "bad")), want: "RuntimeError"},
		{name: "joined", err: errors.Join(errors.New("a"), NewError("KeyError", "k")), want: "KeyError"},
		{name: "custom ErrorType method", err: customTyped{errors.New("k")}, want: "KeyError"},
		{name: "CallError", err: &CallError{Type: "TypeError", Message: "m"}, want: "TypeError"},
		{name: "context canceled", err: context.Canceled, want: "errorString"},
		{name: "deadline", err: context.DeadlineExceeded, want: "deadlineExceededError"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ErrorType(tc.err); got != tc.want {
				t.Errorf("ErrorType(%#v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

func TestNewError(t *testing.T) {
	err := NewError("ValueError", "This task was designed to fail")
	if diff := cmp.Diff("This task was designed to fail", err.Error()); diff != "" {
		t.Errorf("Error mismatch (-want +got):\n%s", diff)
	}
}

type Inner struct {
	ID    int `json:"id"`
	Depth int `json:"depth,omitempty"`
}

type Tagged struct {
	Name string `json:"Name"`
}

type Untagged struct {
	Name string
}

type Node struct {
	*Node
	Value int `json:"value"`
}

func TestCallBindingDominance(t *testing.T) {
	// ID at depth 0 hides Inner's id; of the two "Name"s at depth 1 the
	// tagged one wins, as in encoding/json.
	type outer struct {
		Inner
		Tagged
		Untagged
		ID string `json:"id"`
	}
	r := New()
	echoTask[outer](r, "outer")
	echoTask[Node](r, "node")

	f, _ := r.Lookup("outer")
	got, cerr := f.Call(t.Context(), []byte(`{"id":"top","Name":"n","depth":3}`), nil)
	if cerr != nil {
		t.Fatal(cerr)
	}
	want := outer{Inner: Inner{Depth: 3}, Tagged: Tagged{Name: "n"}, ID: "top"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}

	// A recursive embedding terminates and adds no parameters.
	f, _ = r.Lookup("node")
	got, cerr = f.Call(t.Context(), []byte(`{"value":1}`), nil)
	if cerr != nil {
		t.Fatal(cerr)
	}
	if diff := cmp.Diff(Node{Value: 1}, got); diff != "" {
		t.Errorf("result mismatch (-want +got):\n%s", diff)
	}
}
