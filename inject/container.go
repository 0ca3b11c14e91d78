// Package inject holds the values chapkit hands to task functions, keyed by
// their exact Go type.
//
// A [Container] maps a [reflect.Type] to either an app-wide value
// ([Provide]) or a provider function called on every resolution
// ([ProvideFunc]), for values bound to one job such as a *gorm.DB carrying
// the job's context. Types match exactly: a value provided as *Store is not
// found under an interface it implements, so provide it as that interface
// (Provide[Storer](c, s)). Give primitive values their own named types
// (type ModelDir string) so they cannot collide.
//
// The builder provides every value, then calls [Container.Freeze]; from then
// on reads take no lock and late Provide calls fail loudly.
package inject

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Sentinel errors. Errors returned by this package wrap one of them; match
// with [errors.Is].
var (
	// ErrNotProvided is wrapped by [Get] and [Container.Resolve] when no
	// value of the requested type is provided.
	ErrNotProvided = errors.New("inject: type not provided")
	// ErrFrozen is wrapped by [Provide] and [ProvideFunc] on a frozen
	// container.
	ErrFrozen = errors.New("inject: container is frozen")
	// ErrDuplicate is wrapped by [Provide] and [ProvideFunc] when the type
	// is already provided.
	ErrDuplicate = errors.New("inject: type already provided")
)

// Container maps exact types to values or provider functions.
//
// The zero value is an empty, unfrozen container ready to use; [New] returns
// the same. A nil *Container provides nothing: [Container.Has] reports false
// and [Container.Resolve] returns an error wrapping [ErrNotProvided];
// [Provide], [ProvideFunc] and [Container.Freeze] panic on it.
//
// A Container is safe for concurrent use. Once frozen, its read paths
// ([Container.Has], [Container.Resolve], [Container.Types]) take no lock,
// because nothing can write to it any more. A Container must not be copied
// after first use; use [Container.Clone].
type Container struct {
	mu      sync.RWMutex
	frozen  atomic.Bool // set under mu; read without it to skip locking
	entries map[reflect.Type]*entry
}

// entry is one provided type. Exactly one of value or provide is used.
type entry struct {
	site    string        // file:line of the Provide call, for duplicate errors
	value   reflect.Value // app-wide value, of the entry's exact type
	provide func(ctx context.Context) (reflect.Value, error)
}

// New returns an empty, unfrozen container.
func New() *Container {
	return &Container{}
}

// Provide registers v as the app-wide value of type T. The key is
// reflect.TypeFor[T](), not the dynamic type of v, so Provide[io.Reader](c, b)
// is found under io.Reader and not under *bytes.Buffer. A nil pointer or
// nil interface is stored as is and resolves to that nil value.
//
// Provide returns an error wrapping [ErrDuplicate], naming both call sites,
// when T is already provided (the first value stays), or wrapping
// [ErrFrozen] after [Container.Freeze]. It is safe for concurrent use.
func Provide[T any](c *Container, v T) error {
	return c.add(reflect.TypeFor[T](), &entry{site: callerSite(), value: valueOf(v)})
}

// ProvideFunc registers f as the provider of type T: f is called on every
// resolution of T with the context passed to [Container.Resolve] or [Get],
// so each job can receive its own value (a *gorm.DB bound to the job's
// context, for instance). f must be safe for concurrent use.
//
// ProvideFunc returns an error when f is nil, an error wrapping
// [ErrDuplicate], naming both call sites, when T is already provided, or
// wrapping [ErrFrozen] after [Container.Freeze]. It is safe for concurrent
// use.
func ProvideFunc[T any](c *Container, f func(ctx context.Context) (T, error)) error {
	t := reflect.TypeFor[T]()
	if f == nil {
		return fmt.Errorf("inject: nil provider function for %s", t)
	}
	return c.add(t, &entry{
		site: callerSite(),
		provide: func(ctx context.Context) (reflect.Value, error) {
			v, err := f(ctx)
			if err != nil {
				return reflect.Value{}, err
			}
			return valueOf(v), nil
		},
	})
}

// Get resolves the value of type T, calling its provider with ctx when it
// was registered with [ProvideFunc]. It returns an error wrapping
// [ErrNotProvided] when T is not provided, or the provider's error wrapped
// with the type name. It is safe for concurrent use.
func Get[T any](ctx context.Context, c *Container) (T, error) {
	var zero T
	v, err := c.Resolve(ctx, reflect.TypeFor[T]())
	if err != nil {
		return zero, err
	}
	// The comma-ok form turns a stored nil interface into the zero T
	// instead of panicking.
	got, _ := v.Interface().(T)
	return got, nil
}

// Resolve returns the value provided for exactly type t, calling its
// provider with ctx when it was registered with [ProvideFunc]. The returned
// value has type t (a nil interface included) and is not addressable, so it
// cannot be used to change what the container holds.
//
// Resolve returns an error wrapping [ErrNotProvided] that lists the provided
// types when t is not provided, or the provider's error wrapped with the
// type name. It is safe for concurrent use and takes no lock once the
// container is frozen.
func (c *Container) Resolve(ctx context.Context, t reflect.Type) (reflect.Value, error) {
	e := c.lookup(t)
	if e == nil {
		return reflect.Value{}, c.notProvided(t)
	}
	if e.provide == nil {
		return e.value, nil
	}
	v, err := e.provide(ctx)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("inject: provide %s: %w", t, err)
	}
	return v, nil
}

// Has reports whether a value of exactly type t is provided. It does not
// call providers. It is safe for concurrent use and takes no lock once the
// container is frozen.
func (c *Container) Has(t reflect.Type) bool {
	return c.lookup(t) != nil
}

// Types returns the provided types sorted by their String form; it returns
// an empty, non-nil slice when nothing is provided. The slice is the
// caller's. It is safe for concurrent use.
func (c *Container) Types() []reflect.Type {
	ts := []reflect.Type{}
	if c == nil {
		return ts
	}
	if !c.frozen.Load() {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	for t := range c.entries {
		ts = append(ts, t)
	}
	slices.SortFunc(ts, func(a, b reflect.Type) int {
		// Two packages may declare types with the same String form; the
		// package path keeps the order deterministic.
		return cmp.Or(strings.Compare(a.String(), b.String()),
			strings.Compare(a.PkgPath(), b.PkgPath()))
	})
	return ts
}

// Freeze makes the container read-only: later [Provide] and [ProvideFunc]
// calls return an error wrapping [ErrFrozen], and reads stop taking the
// lock. Freeze is idempotent and safe for concurrent use.
func (c *Container) Freeze() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.frozen.Store(true)
}

// Frozen reports whether [Container.Freeze] has been called. It is safe for
// concurrent use.
func (c *Container) Frozen() bool {
	return c != nil && c.frozen.Load()
}

// Clone returns an unfrozen container holding the same values and
// providers, so one builder can build twice. Values are shared, not deep
// copied; later Provide calls on either container do not affect the other.
// It is safe for concurrent use.
func (c *Container) Clone() *Container {
	out := New()
	if c == nil {
		return out
	}
	if !c.frozen.Load() {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	if len(c.entries) > 0 {
		out.entries = make(map[reflect.Type]*entry, len(c.entries))
		for t, e := range c.entries {
			out.entries[t] = e // entries are never mutated, so sharing is safe
		}
	}
	return out
}

func (c *Container) add(t reflect.Type, e *entry) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen.Load() {
		return &sentinelError{
			msg:  fmt.Sprintf("inject: cannot provide %s at %s: container is frozen; provide values before Build", t, e.site),
			kind: ErrFrozen,
		}
	}
	if prev, ok := c.entries[t]; ok {
		return &sentinelError{
			msg:  fmt.Sprintf("inject: %s is provided twice: first at %s, again at %s", t, prev.site, e.site),
			kind: ErrDuplicate,
		}
	}
	if c.entries == nil {
		c.entries = make(map[reflect.Type]*entry)
	}
	c.entries[t] = e
	return nil
}

// lookup returns the entry for t, or nil. Once frozen the map is never
// written again, and the atomic load orders this read after every write
// made before Freeze, so no lock is needed.
func (c *Container) lookup(t reflect.Type) *entry {
	if c == nil || t == nil {
		return nil
	}
	if !c.frozen.Load() {
		c.mu.RLock()
		defer c.mu.RUnlock()
	}
	return c.entries[t]
}

// notProvided builds the missing-type error: what is provided, and which
// provided types are probably meant (an implementation provided under its
// concrete type, a pointer against its element).
func (c *Container) notProvided(t reflect.Type) error {
	types := c.Types()
	names := make([]string, 0, len(types))
	var near []string
	for _, u := range types {
		names = append(names, u.String())
		if t != nil && isNear(t, u) {
			near = append(near, u.String())
		}
	}
	provided := "none"
	if len(names) > 0 {
		provided = strings.Join(names, ", ")
	}
	want := "<nil>"
	if t != nil {
		want = t.String()
	}
	msg := fmt.Sprintf("inject: no value of type %s is provided (provided: %s)", want, provided)
	if len(near) > 0 {
		msg += fmt.Sprintf("; did you mean %s? types match exactly, so provide the value as %s",
			strings.Join(near, " or "), want)
	}
	return &sentinelError{msg: msg, kind: ErrNotProvided}
}

// isNear reports whether provided type u is a likely intended match for the
// wanted type t.
func isNear(t, u reflect.Type) bool {
	switch {
	case t.Kind() == reflect.Interface && u.Implements(t):
		return true
	case t.Kind() == reflect.Pointer && t.Elem() == u,
		u.Kind() == reflect.Pointer && u.Elem() == t:
		return true
	default:
		// Same printed name from a different package path.
		return t.String() == u.String()
	}
}

// valueOf returns v as a reflect.Value of exactly type T. reflect.ValueOf(v)
// would lose an interface T (yielding the dynamic type, or an invalid Value
// for nil); indexing a non-addressable array keeps T and, unlike
// reflect.ValueOf(&v).Elem(), gives a Value nobody can Set through.
func valueOf[T any](v T) reflect.Value {
	return reflect.ValueOf([1]T{v}).Index(0)
}

// callerSite returns file:line of the caller of the exported function that
// called it.
func callerSite() string {
	_, file, line, ok := runtime.Caller(2)
	if !ok {
		return "unknown location"
	}
	return fmt.Sprintf("%s:%d", file, line)
}

// sentinelError carries a full message while matching a sentinel under
// errors.Is, so the text does not repeat the sentinel's own.
type sentinelError struct {
	msg  string
	kind error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.kind }
