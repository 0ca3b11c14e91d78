// Package registry holds named, typed task functions: the Go side of a
// function ("python") task, whose command is a registered name and whose
// parameters are a JSON object (docs/http-api.md, function tasks).
//
// Functions are registered with generics, so a wrong signature fails to
// compile rather than at job time:
//
//	func(ctx context.Context, p P) (R, error)          // Register
//	func(ctx context.Context, p P, d D) (R, error)     // RegisterWith
//
// P is decoded from the task's parameters: either map[string]any, which
// receives the whole object, or a struct whose exported fields are the
// parameters by JSON name. D is a struct whose exported fields are injected
// by exact type from an [inject.Container]. R is the result stored in the
// task's artifact and should encode to JSON.
//
// # Parameters
//
// A struct field of P is required unless it is a pointer, its json tag has
// omitempty, or it has a default tag holding a JSON literal:
//
//	type SleepParams struct {
//		Seconds int     `json:"seconds" default:"2"`
//		Label   *string `json:"label"`
//	}
//
// Anonymous embedded structs are flattened, as encoding/json does. Binding
// fails, without calling the function, on a missing required parameter
// (ValueError), an unknown key, a value of the wrong JSON type, or a null
// where the Go type cannot be nil (TypeError); see [Func.Call]. Null is
// accepted only by pointers, slices, maps, interfaces and types with their
// own UnmarshalJSON or UnmarshalText, at any depth, and a default tag may
// not be null for any other type.
//
// # Injection
//
// Fields of D are resolved by exact type, so a *gorm.DB field receives the
// job-scoped handle the application provides. A field tagged
// `inject:"optional"` stays zero when its type is not provided.
// [Registry.Check] reports every required type nobody provides, so the
// builder fails at start-up instead of at the first execution.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"sync"

	"github.com/chapkit-go/chapkit/inject"
)

// Sentinel errors. Errors returned by this package wrap one of them; match
// with [errors.Is].
var (
	// ErrNotFound is wrapped by [Registry.Lookup] for an unknown name.
	ErrNotFound = errors.New("registry: task not found")
	// ErrDuplicate is wrapped by the Register functions for a name that is
	// already registered.
	ErrDuplicate = errors.New("registry: task already registered")
	// ErrFrozen is wrapped by the Register functions after
	// [Registry.Freeze].
	ErrFrozen = errors.New("registry: registry is frozen")
)

// namePattern is the shape of a registered name. Names are stored in task
// rows, so they are stable strings, never derived from Go identifiers.
var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

// Registry maps names to task functions.
//
// The zero value is an empty registry ready to use; [New] returns the same.
// A Registry is safe for concurrent use. It must not be copied after first
// use; use [Registry.Clone].
type Registry struct {
	mu     sync.RWMutex
	frozen bool
	funcs  map[string]*Func
}

// Default is the registry for init()-style registration in package main,
// as [net/http.DefaultServeMux] is for handlers. Tests and applications that
// need isolation create their own with [New].
var Default = New()

// New returns an empty, unfrozen registry.
func New() *Registry {
	return &Registry{}
}

// Register adds fn under name. P must be map[string]any or a struct
// (struct{} for a function without parameters); see the package
// documentation for how parameters are bound.
//
// Register returns an error, and leaves the registry unchanged, when name
// does not match ^[a-z0-9][a-z0-9_.-]*$, fn is nil, P is another type or has
// a default tag that does not decode into its field, when name is already
// registered (wrapping [ErrDuplicate], text "Task '<name>' already
// registered"; the first registration stays), or after [Registry.Freeze]
// (wrapping [ErrFrozen]). It is safe for concurrent use.
func Register[P, R any](r *Registry, name string, fn func(context.Context, P) (R, error)) error {
	if err := checkName(name); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("registry: task %q: nil function", name)
	}
	ps, err := newParamSpec(reflect.TypeFor[P]())
	if err != nil {
		return fmt.Errorf("registry: task %q: %w", name, err)
	}
	return r.add(&Func{
		name: name,
		call: func(ctx context.Context, raw json.RawMessage, _ *inject.Container) (any, *CallError) {
			var p P
			if cerr := ps.bind(raw, &p); cerr != nil {
				return nil, cerr
			}
			return result(fn(ctx, p))
		},
	})
}

// RegisterWith adds fn under name, like [Register], with a third argument
// of struct type D whose exported fields are injected by exact type from
// the container passed to [Func.Call]. A field tagged `inject:"optional"`
// stays zero when its type is not provided.
//
// RegisterWith returns the errors of [Register], and an error when D is not
// a struct or has an inject tag other than "optional". It is safe for
// concurrent use.
func RegisterWith[P, D, R any](r *Registry, name string, fn func(context.Context, P, D) (R, error)) error {
	if err := checkName(name); err != nil {
		return err
	}
	if fn == nil {
		return fmt.Errorf("registry: task %q: nil function", name)
	}
	ps, err := newParamSpec(reflect.TypeFor[P]())
	if err != nil {
		return fmt.Errorf("registry: task %q: %w", name, err)
	}
	deps, err := newDeps(reflect.TypeFor[D]())
	if err != nil {
		return fmt.Errorf("registry: task %q: %w", name, err)
	}
	return r.add(&Func{
		name: name,
		deps: deps,
		call: func(ctx context.Context, raw json.RawMessage, c *inject.Container) (any, *CallError) {
			var p P
			if cerr := ps.bind(raw, &p); cerr != nil {
				return nil, cerr
			}
			var d D
			if cerr := injectDeps(ctx, c, deps, reflect.ValueOf(&d).Elem()); cerr != nil {
				return nil, cerr
			}
			return result(fn(ctx, p, d))
		},
	})
}

// MustRegister is like [Register] but panics on error. It is meant for
// package main and init functions.
func MustRegister[P, R any](r *Registry, name string, fn func(context.Context, P) (R, error)) {
	if err := Register(r, name, fn); err != nil {
		panic(err)
	}
}

// MustRegisterWith is like [RegisterWith] but panics on error. It is meant
// for package main and init functions.
func MustRegisterWith[P, D, R any](r *Registry, name string, fn func(context.Context, P, D) (R, error)) {
	if err := RegisterWith(r, name, fn); err != nil {
		panic(err)
	}
}

// Names returns the registered names sorted ascending, or an empty non-nil
// slice. The slice is the caller's. It is safe for concurrent use.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := slices.Sorted(maps.Keys(r.funcs))
	if names == nil {
		names = []string{}
	}
	return names
}

// Has reports whether name is registered. It is safe for concurrent use.
func (r *Registry) Has(name string) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	_, ok := r.funcs[name]
	return ok
}

// Lookup returns the function registered under name. For an unknown name
// it returns an error wrapping [ErrNotFound] whose text is exactly
// "Task '<name>' not found in registry". It is safe for concurrent use.
func (r *Registry) Lookup(name string) (*Func, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.funcs[name]
	if !ok {
		return nil, &sentinelError{msg: fmt.Sprintf("Task '%s' not found in registry", name), kind: ErrNotFound}
	}
	return f, nil
}

// Freeze makes the registry read-only: later Register calls return an
// error wrapping [ErrFrozen]. The builder freezes the registry it is given,
// so a function registered after Build fails loudly instead of being
// silently missing. Freeze is idempotent and safe for concurrent use.
func (r *Registry) Freeze() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.frozen = true
}

// Frozen reports whether [Registry.Freeze] has been called since the last
// [Registry.Clear]. It is safe for concurrent use.
func (r *Registry) Frozen() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.frozen
}

// Clear removes every function and unfreezes the registry, returning it to
// the state [New] gives. It exists for tests that share [Default]; an
// application that is running keeps the functions it was built with only if
// it holds a [Registry.Clone]. It is safe for concurrent use.
func (r *Registry) Clear() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.funcs = nil
	r.frozen = false
}

// Check reports, for every registered function, each non-optional injected
// type that c does not provide. The result joins one error per missing
// type ([errors.Join]), each reading
//
//	registry: function "query_task_count" needs *gorm.DB, which nobody provides
//
// and wrapping [inject.ErrNotProvided]; it is nil when everything resolves.
// Functions are checked in name order. A nil c provides nothing. Check is
// safe for concurrent use.
func (r *Registry) Check(c *inject.Container) error {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(r.funcs)) {
		for _, d := range r.funcs[name].deps {
			if d.optional || c.Has(d.typ) {
				continue
			}
			errs = append(errs, &sentinelError{
				msg:  fmt.Sprintf("registry: function %q needs %s, which nobody provides", name, d.typ),
				kind: inject.ErrNotProvided,
			})
		}
	}
	return errors.Join(errs...)
}

// Clone returns an unfrozen registry holding the same functions. Later
// registrations on either registry do not affect the other. It is safe for
// concurrent use.
func (r *Registry) Clone() *Registry {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return &Registry{funcs: maps.Clone(r.funcs)}
}

func (r *Registry) add(f *Func) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.frozen {
		return &sentinelError{
			msg:  fmt.Sprintf("registry: cannot register task %q: the registry is frozen; register task functions before Build", f.name),
			kind: ErrFrozen,
		}
	}
	if _, ok := r.funcs[f.name]; ok {
		return &sentinelError{msg: fmt.Sprintf("Task '%s' already registered", f.name), kind: ErrDuplicate}
	}
	if r.funcs == nil {
		r.funcs = make(map[string]*Func)
	}
	r.funcs[f.name] = f
	return nil
}

func checkName(name string) error {
	if !namePattern.MatchString(name) {
		return fmt.Errorf("registry: invalid task name %q: use lowercase letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// sentinelError carries a message worded as chapkit clients expect it while
// matching a sentinel under errors.Is.
type sentinelError struct {
	msg  string
	kind error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.kind }
