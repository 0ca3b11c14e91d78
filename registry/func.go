package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"runtime/debug"

	"github.com/chapkit-go/chapkit/inject"
)

// Func is a registered task function, obtained from [Registry.Lookup]. It
// is immutable and safe for concurrent use.
type Func struct {
	name string
	deps []dep // injected fields, for Check; nil for Register
	call func(ctx context.Context, params json.RawMessage, c *inject.Container) (any, *CallError)
}

// Name returns the name the function was registered under.
func (f *Func) Name() string { return f.name }

// Call binds params and the injected values, then runs the function on the
// caller's goroutine with ctx. params is the task's parameters object; nil,
// empty or JSON null mean {}. c supplies injected values and may be nil for
// a function that injects nothing.
//
// Binding happens in this order; the first failure is returned as a
// [CallError] and the function is not called:
//
//  1. params is not a JSON object: Type "TypeError", Message "task
//     parameters must be a JSON object".
//  2. A required parameter is absent: Type "ValueError", Message
//     "Missing required parameter '<name>' for task function. Parameter is
//     not injectable and not provided in task.parameters." (the first in
//     field order).
//  3. A key is not a parameter: Type "TypeError", Message "unexpected
//     parameter '<key>'" (the first in sorted order).
//  4. Defaults are applied and the object decoded; a decode error gives
//     Type "TypeError" and the decoder's message. A JSON null, at any depth,
//     whose Go type cannot be nil (anything but a pointer, slice, map,
//     interface or a type with its own UnmarshalJSON/UnmarshalText) is
//     refused the same way: "json: cannot unmarshal null into Go struct
//     field sumParams.a of type int".
//  5. A required injected type does not resolve: Type "InjectionError" and
//     the container's message.
//
// A panic in the function (or in a provider) is recovered into Type
// "panic" with the recovered value as Message. A returned error becomes
// Type [ErrorType](err) and Message err.Error(). Every CallError carries a
// stack trace. On success Call returns the function's result as any and a
// nil *CallError; compare callErr with nil before storing it in an error
// variable, as a nil *CallError in an error interface is not nil.
//
// Call is safe for concurrent use: every call binds its own arguments.
func (f *Func) Call(ctx context.Context, params json.RawMessage, c *inject.Container) (result any, callErr *CallError) {
	defer func() {
		// Since Go 1.21 panic(nil) recovers as a *runtime.PanicNilError, so
		// a nil check is enough to catch every panic.
		if v := recover(); v != nil {
			result = nil
			callErr = &CallError{Type: "panic", Message: fmt.Sprint(v), Traceback: string(debug.Stack())}
		}
	}()
	return f.call(ctx, params, c)
}

// result turns a task function's return values into Call's.
func result[R any](r R, err error) (any, *CallError) {
	if err != nil {
		return nil, &CallError{Type: ErrorType(err), Message: err.Error(), Traceback: string(debug.Stack())}
	}
	return r, nil
}

// dep is one injected field of D.
type dep struct {
	index    int
	typ      reflect.Type
	optional bool
}

// newDeps describes the injected fields of t, which must be a struct.
func newDeps(t reflect.Type) ([]dep, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("injected type %s must be a struct whose fields are resolved by type", t)
	}
	var deps []dep
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		d := dep{index: i, typ: sf.Type}
		switch tag := sf.Tag.Get("inject"); tag {
		case "":
		case "optional":
			d.optional = true
		default:
			return nil, fmt.Errorf("field %s of %s: unknown inject tag %q (want \"optional\" or none)", sf.Name, t, tag)
		}
		deps = append(deps, d)
	}
	return deps, nil
}

// injectDeps sets the fields of dst, a settable struct value, from c.
func injectDeps(ctx context.Context, c *inject.Container, deps []dep, dst reflect.Value) *CallError {
	for _, d := range deps {
		if d.optional && !c.Has(d.typ) {
			continue
		}
		v, err := c.Resolve(ctx, d.typ)
		if err != nil {
			return &CallError{Type: "InjectionError", Message: err.Error(), Traceback: string(debug.Stack())}
		}
		dst.Field(d.index).Set(v)
	}
	return nil
}
