package registry

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/inject"
)

type noParams struct{}

func nop(context.Context, noParams) (string, error) { return "ok", nil }

func TestRegisterLookup(t *testing.T) {
	setup := func(t *testing.T) *Registry {
		t.Helper()
		r := New()
		for _, name := range []string{"zeta", "alpha", "mid.task"} {
			if err := Register(r, name, nop); err != nil {
				t.Fatal(err)
			}
		}
		return r
	}

	t.Run("names sorted", func(t *testing.T) {
		r := setup(t)
		if diff := cmp.Diff([]string{"alpha", "mid.task", "zeta"}, r.Names()); diff != "" {
			t.Errorf("Names mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("empty names are non-nil", func(t *testing.T) {
		if got := New().Names(); got == nil || len(got) != 0 {
			t.Errorf("Names = %#v, want empty non-nil", got)
		}
		var zero Registry
		if got := zero.Names(); got == nil || len(got) != 0 {
			t.Errorf("zero Names = %#v, want empty non-nil", got)
		}
	})

	t.Run("lookup", func(t *testing.T) {
		r := setup(t)
		f, err := r.Lookup("alpha")
		if err != nil {
			t.Fatal(err)
		}
		if f.Name() != "alpha" {
			t.Errorf("Name = %q, want alpha", f.Name())
		}
		if !r.Has("alpha") || r.Has("beta") {
			t.Errorf("Has(alpha), Has(beta) = %v, %v, want true, false", r.Has("alpha"), r.Has("beta"))
		}
	})

	t.Run("unknown", func(t *testing.T) {
		r := setup(t)
		f, err := r.Lookup("missing_fn")
		if f != nil || !errors.Is(err, ErrNotFound) {
			t.Fatalf("Lookup = %v, %v, want nil, ErrNotFound", f, err)
		}
		if diff := cmp.Diff("Task 'missing_fn' not found in registry", err.Error()); diff != "" {
			t.Errorf("error text mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("duplicate keeps the first", func(t *testing.T) {
		r := setup(t)
		err := Register(r, "alpha", func(context.Context, noParams) (string, error) { return "second", nil })
		if !errors.Is(err, ErrDuplicate) {
			t.Fatalf("error = %v, want ErrDuplicate", err)
		}
		if diff := cmp.Diff("Task 'alpha' already registered", err.Error()); diff != "" {
			t.Errorf("error text mismatch (-want +got):\n%s", diff)
		}
		err = RegisterWith(r, "alpha", func(context.Context, noParams, struct{}) (int, error) { return 0, nil })
		if !errors.Is(err, ErrDuplicate) {
			t.Errorf("RegisterWith error = %v, want ErrDuplicate", err)
		}
		f, _ := r.Lookup("alpha")
		got, cerr := f.Call(t.Context(), nil, nil)
		if cerr != nil || got != "ok" {
			t.Errorf("Call = %v, %v, want the first function's ok", got, cerr)
		}
	})

	t.Run("clear", func(t *testing.T) {
		r := setup(t)
		r.Freeze()
		r.Clear()
		if got := r.Names(); len(got) != 0 {
			t.Errorf("Names after Clear = %v, want none", got)
		}
		if r.Frozen() {
			t.Error("Frozen after Clear = true, want false")
		}
		if err := Register(r, "alpha", nop); err != nil {
			t.Errorf("Register after Clear = %v", err)
		}
	})

	t.Run("freeze", func(t *testing.T) {
		r := setup(t)
		if r.Frozen() {
			t.Fatal("Frozen before Freeze = true")
		}
		r.Freeze()
		r.Freeze()
		if !r.Frozen() {
			t.Fatal("Frozen after Freeze = false")
		}
		for _, err := range []error{
			Register(r, "late", nop),
			RegisterWith(r, "late", func(context.Context, noParams, struct{}) (int, error) { return 0, nil }),
		} {
			if !errors.Is(err, ErrFrozen) {
				t.Errorf("error = %v, want ErrFrozen", err)
			} else if !strings.Contains(err.Error(), "before Build") {
				t.Errorf("error = %q, want it to say to register before Build", err)
			}
		}
		if r.Has("late") {
			t.Error("late function was registered")
		}
		if _, err := r.Lookup("alpha"); err != nil {
			t.Errorf("Lookup after Freeze = %v", err)
		}
	})

	t.Run("clone", func(t *testing.T) {
		r := setup(t)
		r.Freeze()
		cl := r.Clone()
		if cl.Frozen() {
			t.Fatal("Clone is frozen")
		}
		if err := Register(cl, "extra", nop); err != nil {
			t.Fatal(err)
		}
		if r.Has("extra") {
			t.Error("Register on the clone changed the original")
		}
		if diff := cmp.Diff([]string{"alpha", "extra", "mid.task", "zeta"}, cl.Names()); diff != "" {
			t.Errorf("clone Names mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestMustRegisterPanics(t *testing.T) {
	r := New()
	MustRegister(r, "once", nop)
	MustRegisterWith(r, "twice", func(context.Context, noParams, struct{}) (int, error) { return 0, nil })

	for name, f := range map[string]func(){
		"MustRegister": func() { MustRegister(r, "once", nop) },
		"MustRegisterWith": func() {
			MustRegisterWith(r, "twice", func(context.Context, noParams, struct{}) (int, error) { return 0, nil })
		},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				err, _ := recover().(error)
				if !errors.Is(err, ErrDuplicate) {
					t.Errorf("recovered %v, want an error wrapping ErrDuplicate", err)
				}
			}()
			f()
		})
	}
}

func TestNameValidation(t *testing.T) {
	tests := []struct {
		name  string
		valid bool
	}{
		{name: "calculate_sum", valid: true},
		{name: "a", valid: true},
		{name: "0day", valid: true},
		{name: "ns.task-v2_x", valid: true},
		{name: "", valid: false},
		{name: "Upper", valid: false},
		{name: "_leading", valid: false},
		{name: ".leading", valid: false},
		{name: "-leading", valid: false},
		{name: "has space", valid: false},
		{name: "slash/name", valid: false},
		{name: "trailing\n", valid: false},
		{name: "ünicode", valid: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New()
			err := Register(r, tc.name, nop)
			if got := err == nil; got != tc.valid {
				t.Errorf("Register(%q) error = %v, want valid=%v", tc.name, err, tc.valid)
			}
			if r.Has(tc.name) != tc.valid {
				t.Errorf("Has(%q) = %v, want %v", tc.name, r.Has(tc.name), tc.valid)
			}
		})
	}
}

func TestRegisterRejectsBadTypes(t *testing.T) {
	type badDefault struct {
		N int `json:"n" default:"\"two\""`
	}
	type unquotedString struct {
		S string `json:"s" default:"hello"`
	}
	type ambiguous struct {
		A struct {
			X int `json:"x"`
		}
	}
	type inner1 struct{ X int }
	type inner2 struct{ X int }
	type twoEmbedded struct {
		inner1
		inner2
	}
	type badInjectTag struct {
		DB *struct{} `inject:"optinal"`
	}
	type nullDefault struct {
		N int `json:"n" default:"null"`
	}
	r := New()
	tests := []struct {
		name    string
		err     error
		wantSub string
	}{
		{"int params", Register(r, "p1", func(context.Context, int) (int, error) { return 0, nil }), "must be map[string]any or a struct"},
		{"pointer params", Register(r, "p2", func(context.Context, *noParams) (int, error) { return 0, nil }), "must be map[string]any or a struct"},
		{"map[string]int params", Register(r, "p3", func(context.Context, map[string]int) (int, error) { return 0, nil }), "must be map[string]any or a struct"},
		{"default of the wrong type", Register(r, "p4", func(context.Context, badDefault) (int, error) { return 0, nil }), "field N: default"},
		{"default not JSON", Register(r, "p5", func(context.Context, unquotedString) (int, error) { return 0, nil }), "not a JSON literal"},
		{"same name at same depth", Register(r, "p6", func(context.Context, twoEmbedded) (int, error) { return 0, nil }), `parameter "X" is ambiguous`},
		{"nil function", Register[noParams, int](r, "p7", nil), "nil function"},
		{"non-struct deps", RegisterWith(r, "p8", func(context.Context, noParams, *inject.Container) (int, error) { return 0, nil }), "must be a struct"},
		{"unknown inject tag", RegisterWith(r, "p9", func(context.Context, noParams, badInjectTag) (int, error) { return 0, nil }), `unknown inject tag "optinal"`},
		{"null default for an int", Register(r, "p10", func(context.Context, nullDefault) (int, error) { return 0, nil }), "field N: default null: json: cannot unmarshal null into Go value of type int"},
	}
	// A named struct field is a parameter, not flattened: this one is fine.
	if err := Register(r, "ok", func(context.Context, ambiguous) (int, error) { return 0, nil }); err != nil {
		t.Errorf("nested struct field: %v", err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || !strings.Contains(tc.err.Error(), tc.wantSub) {
				t.Errorf("error = %v, want it to contain %q", tc.err, tc.wantSub)
			}
		})
	}
	if diff := cmp.Diff([]string{"ok"}, r.Names()); diff != "" {
		t.Errorf("Names mismatch (-want +got):\n%s", diff)
	}
}

type gormDB struct{ ctx context.Context }

type artifactStore interface{ Put(string) }

type scheduler struct{}

func TestCheck(t *testing.T) {
	type deps struct {
		DB    *gormDB
		Store artifactStore
		Sched *scheduler `inject:"optional"`
	}
	r := New()
	MustRegister(r, "plain", nop)
	MustRegisterWith(r, "query_task_count", func(context.Context, noParams, deps) (int, error) { return 0, nil })
	MustRegisterWith(r, "b_other", func(context.Context, noParams, struct{ DB *gormDB }) (int, error) { return 0, nil })

	c := inject.New()
	err := r.Check(c)
	want := `registry: function "b_other" needs *registry.gormDB, which nobody provides` + "\n" +
		`registry: function "query_task_count" needs *registry.gormDB, which nobody provides` + "\n" +
		`registry: function "query_task_count" needs registry.artifactStore, which nobody provides`
	if err == nil {
		t.Fatal("Check = nil, want errors")
	}
	if diff := cmp.Diff(want, err.Error()); diff != "" {
		t.Errorf("Check mismatch (-want +got):\n%s", diff)
	}
	if !errors.Is(err, inject.ErrNotProvided) {
		t.Errorf("Check error does not wrap inject.ErrNotProvided")
	}

	if err := inject.Provide[*gormDB](c, nil); err != nil {
		t.Fatal(err)
	}
	if err := inject.Provide[artifactStore](c, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.Check(c); err != nil {
		t.Errorf("Check with everything provided = %v", err)
	}
	if err := New().Check(nil); err != nil {
		t.Errorf("empty registry Check(nil) = %v", err)
	}
}

func TestConcurrentUse(t *testing.T) {
	r := New()
	MustRegister(r, "base", func(_ context.Context, p struct {
		N int `json:"n"`
	}) (int, error) {
		return p.N * 2, nil
	})
	var wg sync.WaitGroup
	errs := make(chan string, 32)
	for i := range 8 {
		wg.Go(func() {
			name := "fn" + string(rune('a'+i))
			if err := Register(r, name, nop); err != nil {
				errs <- err.Error()
			}
			for range 20 {
				f, err := r.Lookup("base")
				if err != nil {
					errs <- err.Error()
					return
				}
				if got, cerr := f.Call(t.Context(), []byte(`{"n":21}`), nil); cerr != nil || got != 42 {
					errs <- "Call gave wrong result"
					return
				}
				r.Names()
				r.Has(name)
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if got := len(r.Names()); got != 9 {
		t.Errorf("len(Names) = %d, want 9", got)
	}
}
