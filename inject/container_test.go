package inject

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type modelDir string

type store struct{ name string }

type ctxKey struct{}

func TestProvideGet(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		c := New()
		if err := Provide(c, modelDir("/models")); err != nil {
			t.Fatal(err)
		}
		got, err := Get[modelDir](t.Context(), c)
		if err != nil {
			t.Fatal(err)
		}
		if got != "/models" {
			t.Errorf("Get = %q, want /models", got)
		}
	})

	t.Run("zero value container", func(t *testing.T) {
		var c Container
		if err := Provide(&c, 42); err != nil {
			t.Fatal(err)
		}
		got, err := Get[int](t.Context(), &c)
		if err != nil || got != 42 {
			t.Errorf("Get = %d, %v, want 42, nil", got, err)
		}
	})

	t.Run("nil pointer is stored", func(t *testing.T) {
		c := New()
		if err := Provide[*store](c, nil); err != nil {
			t.Fatal(err)
		}
		if !c.Has(reflect.TypeFor[*store]()) {
			t.Fatal("Has(*store) = false after Provide(nil)")
		}
		got, err := Get[*store](t.Context(), c)
		if err != nil || got != nil {
			t.Errorf("Get = %v, %v, want nil, nil", got, err)
		}
	})

	t.Run("nil interface is stored", func(t *testing.T) {
		c := New()
		if err := Provide[io.Reader](c, nil); err != nil {
			t.Fatal(err)
		}
		v, err := c.Resolve(t.Context(), reflect.TypeFor[io.Reader]())
		if err != nil {
			t.Fatal(err)
		}
		if v.Type() != reflect.TypeFor[io.Reader]() || !v.IsNil() {
			t.Errorf("Resolve = %v of type %v, want nil io.Reader", v, v.Type())
		}
		got, err := Get[io.Reader](t.Context(), c)
		if err != nil || got != nil {
			t.Errorf("Get = %v, %v, want nil, nil", got, err)
		}
	})

	t.Run("resolved value is read-only", func(t *testing.T) {
		c := New()
		if err := Provide(c, 1); err != nil {
			t.Fatal(err)
		}
		v, err := c.Resolve(t.Context(), reflect.TypeFor[int]())
		if err != nil {
			t.Fatal(err)
		}
		if v.CanSet() {
			t.Error("Resolve returned a settable value")
		}
	})
}

func TestExactTypeMatching(t *testing.T) {
	c := New()
	buf := &bytes.Buffer{}
	if err := Provide(c, buf); err != nil { // provided as *bytes.Buffer
		t.Fatal(err)
	}

	_, err := Get[io.Reader](t.Context(), c)
	if !errors.Is(err, ErrNotProvided) {
		t.Fatalf("Get[io.Reader] error = %v, want ErrNotProvided", err)
	}
	want := "inject: no value of type io.Reader is provided (provided: *bytes.Buffer); " +
		"did you mean *bytes.Buffer? types match exactly, so provide the value as io.Reader"
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("error text mismatch (-want +got):\n%s", diff)
	}

	if err := Provide[io.Reader](c, buf); err != nil { // now as the interface too
		t.Fatal(err)
	}
	r, err := Get[io.Reader](t.Context(), c)
	if err != nil {
		t.Fatal(err)
	}
	if r != io.Reader(buf) {
		t.Errorf("Get[io.Reader] = %p, want %p", r, buf)
	}
	if c.Has(reflect.TypeFor[io.Writer]()) {
		t.Error("Has(io.Writer) = true, want false")
	}
}

func TestDuplicateNamesBothCallSites(t *testing.T) {
	c := New()
	_, file, line, _ := runtime.Caller(0)
	first := Provide(c, modelDir("a"))
	second := Provide(c, modelDir("b"))
	if first != nil {
		t.Fatal(first)
	}
	if !errors.Is(second, ErrDuplicate) {
		t.Fatalf("second Provide error = %v, want ErrDuplicate", second)
	}
	want := fmt.Sprintf("inject: inject.modelDir is provided twice: first at %s:%d, again at %s:%d",
		file, line+1, file, line+2)
	if diff := cmp.Diff(want, second.Error()); diff != "" {
		t.Errorf("error text mismatch (-want +got):\n%s", diff)
	}

	// The first value stays.
	got, err := Get[modelDir](t.Context(), c)
	if err != nil || got != "a" {
		t.Errorf("Get = %q, %v, want a, nil", got, err)
	}

	// A provider func collides with a value of the same type, too.
	err = ProvideFunc(c, func(context.Context) (modelDir, error) { return "c", nil })
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("ProvideFunc error = %v, want ErrDuplicate", err)
	}
}

func TestMissingListsProvided(t *testing.T) {
	tests := []struct {
		name    string
		provide func(t testing.TB, c *Container)
		want    string
	}{
		{
			name:    "empty",
			provide: func(testing.TB, *Container) {},
			want:    "inject: no value of type *inject.store is provided (provided: none)",
		},
		{
			name: "sorted list",
			provide: func(t testing.TB, c *Container) {
				mustNil(t, Provide(c, modelDir("x")))
				mustNil(t, Provide(c, 1))
				mustNil(t, Provide(c, "s"))
			},
			want: "inject: no value of type *inject.store is provided (provided: inject.modelDir, int, string)",
		},
		{
			name: "element provided for a pointer",
			provide: func(t testing.TB, c *Container) {
				mustNil(t, Provide(c, store{}))
				mustNil(t, Provide(c, 1))
			},
			want: "inject: no value of type *inject.store is provided (provided: inject.store, int); " +
				"did you mean inject.store? types match exactly, so provide the value as *inject.store",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := New()
			tc.provide(t, c)
			_, err := Get[*store](t.Context(), c)
			if !errors.Is(err, ErrNotProvided) {
				t.Fatalf("error = %v, want ErrNotProvided", err)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error text mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNilContainer(t *testing.T) {
	var c *Container
	if c.Has(reflect.TypeFor[int]()) {
		t.Error("nil Has = true")
	}
	if got := c.Types(); got == nil || len(got) != 0 {
		t.Errorf("nil Types = %#v, want empty non-nil", got)
	}
	if _, err := c.Resolve(t.Context(), reflect.TypeFor[int]()); !errors.Is(err, ErrNotProvided) {
		t.Errorf("nil Resolve error = %v, want ErrNotProvided", err)
	}
	if _, err := New().Resolve(t.Context(), nil); !errors.Is(err, ErrNotProvided) {
		t.Errorf("Resolve(nil type) error = %v, want ErrNotProvided", err)
	}
}

func TestTypesSorted(t *testing.T) {
	c := New()
	mustNil(t, Provide(c, "s"))
	mustNil(t, Provide[*store](c, nil))
	mustNil(t, Provide(c, 1))
	mustNil(t, ProvideFunc(c, func(context.Context) (modelDir, error) { return "", nil }))

	var got []string
	for _, typ := range c.Types() {
		got = append(got, typ.String())
	}
	want := []string{"*inject.store", "inject.modelDir", "int", "string"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Types mismatch (-want +got):\n%s", diff)
	}
}

func TestFreeze(t *testing.T) {
	c := New()
	mustNil(t, Provide(c, 1))
	if c.Frozen() {
		t.Fatal("Frozen = true before Freeze")
	}
	c.Freeze()
	c.Freeze() // idempotent
	if !c.Frozen() {
		t.Fatal("Frozen = false after Freeze")
	}

	if err := Provide(c, "late"); !errors.Is(err, ErrFrozen) {
		t.Errorf("Provide after Freeze error = %v, want ErrFrozen", err)
	} else if !strings.Contains(err.Error(), "provide values before Build") {
		t.Errorf("Provide after Freeze error = %q, want it to say to provide before Build", err)
	}
	err := ProvideFunc(c, func(context.Context) (string, error) { return "", nil })
	if !errors.Is(err, ErrFrozen) {
		t.Errorf("ProvideFunc after Freeze error = %v, want ErrFrozen", err)
	}

	got, err := Get[int](t.Context(), c)
	if err != nil || got != 1 {
		t.Errorf("Get after Freeze = %d, %v, want 1, nil", got, err)
	}
	if c.Has(reflect.TypeFor[string]()) {
		t.Error("rejected value is visible")
	}
}

func TestClone(t *testing.T) {
	c := New()
	mustNil(t, Provide(c, 1))
	c.Freeze()

	cl := c.Clone()
	if cl.Frozen() {
		t.Fatal("Clone is frozen")
	}
	mustNil(t, Provide(cl, "only in clone"))

	if got, err := Get[int](t.Context(), cl); err != nil || got != 1 {
		t.Errorf("clone Get[int] = %d, %v, want 1, nil", got, err)
	}
	if c.Has(reflect.TypeFor[string]()) {
		t.Error("Provide on the clone changed the original")
	}

	// Cloning an unfrozen container is independent as well.
	cl2 := cl.Clone()
	mustNil(t, Provide(cl2, modelDir("x")))
	if cl.Has(reflect.TypeFor[modelDir]()) {
		t.Error("Provide on the second clone changed the first")
	}
}

func TestProvideFuncCalledPerResolve(t *testing.T) {
	c := New()
	var calls atomic.Int32
	errBoom := errors.New("boom")
	mustNil(t, ProvideFunc(c, func(ctx context.Context) (*store, error) {
		calls.Add(1)
		name, _ := ctx.Value(ctxKey{}).(string)
		if name == "fail" {
			return nil, errBoom
		}
		return &store{name: name}, nil
	}))

	for _, name := range []string{"job-1", "job-2"} {
		ctx := context.WithValue(t.Context(), ctxKey{}, name)
		got, err := Get[*store](ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if got.name != name {
			t.Errorf("provider saw %q, want %q", got.name, name)
		}
	}
	if got := calls.Load(); got != 2 {
		t.Errorf("provider calls = %d, want 2", got)
	}

	// Has never calls the provider.
	c.Has(reflect.TypeFor[*store]())
	if got := calls.Load(); got != 2 {
		t.Errorf("provider calls after Has = %d, want 2", got)
	}

	_, err := Get[*store](context.WithValue(t.Context(), ctxKey{}, "fail"), c)
	if !errors.Is(err, errBoom) {
		t.Errorf("error = %v, want the provider's error", err)
	}
	if want := "inject: provide *inject.store: boom"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}

	if err := ProvideFunc[int](c, nil); err == nil {
		t.Error("ProvideFunc(nil) returned nil error")
	}
}

func TestConcurrentResolve(t *testing.T) {
	for _, frozen := range []bool{false, true} {
		t.Run(fmt.Sprintf("frozen=%v", frozen), func(t *testing.T) {
			c := New()
			mustNil(t, Provide(c, 7))
			mustNil(t, ProvideFunc(c, func(ctx context.Context) (*store, error) {
				return &store{name: "scoped"}, nil
			}))
			if frozen {
				c.Freeze()
			}

			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := range 16 {
				wg.Go(func() {
					for range 50 {
						if n, err := Get[int](t.Context(), c); err != nil || n != 7 {
							errs <- fmt.Errorf("Get[int] = %d, %v", n, err)
							return
						}
						if s, err := Get[*store](t.Context(), c); err != nil || s.name != "scoped" {
							errs <- fmt.Errorf("Get[*store] = %v, %v", s, err)
							return
						}
						c.Types()
						c.Clone()
					}
					// Writers race with readers while unfrozen; once frozen
					// they must fail without touching the map.
					err := Provide(c, fmt.Sprintf("w%d", i))
					if frozen && !errors.Is(err, ErrFrozen) {
						errs <- fmt.Errorf("Provide on frozen container = %v", err)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
		})
	}
}

func mustNil(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
