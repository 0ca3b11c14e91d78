package task

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/chapkit-go/chapkit/internal/dbtest"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// FuzzDecodeIn feeds arbitrary bodies to the task input decoder: it never
// panics, and what it accepts is a valid task input.
func FuzzDecodeIn(f *testing.F) {
	for _, s := range []string{
		`{"command":"echo hi"}`, `{}`, `[]`, `null`, `"x"`, `{"command":1}`,
		`{"command":"f","task_type":"function","parameters":{"a":1},"enabled":"yes"}`,
		`{"command":"c","id":"01K72P5N5KCRM6MD3BRE4P0999","timeout_seconds":5}`,
		`{"command":"c","enabled":null,"task_type":null,"parameters":[1]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var body any
		if dec.Decode(&body) != nil {
			return
		}
		in, err := DecodeIn(body)
		if err != nil {
			if !problem.Is(err, problem.KindRequestInvalid) {
				t.Fatalf("DecodeIn error of kind %v: %v", problem.KindOf(err), err)
			}
			return
		}
		if in.TaskType != TypeShell && in.TaskType != TypePython {
			t.Fatalf("accepted task_type %q", in.TaskType)
		}
		if in.ID != "" && !wire.ValidID(in.ID) {
			t.Fatalf("accepted id %q", in.ID)
		}
		if in.Parameters != nil {
			var obj map[string]any
			if json.Unmarshal(in.Parameters, &obj) != nil {
				t.Fatalf("accepted parameters %s that are not an object", in.Parameters)
			}
		}
		if in.TimeoutSeconds != nil && *in.TimeoutSeconds <= 0 {
			t.Fatalf("accepted timeout %d", *in.TimeoutSeconds)
		}
	})
}

// FuzzPatch applies arbitrary merge patches to a stored task: a patch is
// either refused with a 422 and changes nothing, or leaves a valid task.
func FuzzPatch(f *testing.F) {
	for _, s := range []string{
		`{"enabled":false}`, `{"parameters":null}`, `{"parameters":{"a":{"b":null}}}`,
		`{"command":null}`, `{"task_type":"function"}`, `{}`, `[]`, `{"timeout_seconds":0}`,
	} {
		f.Add([]byte(s))
	}
	db := dbtest.Open(f, &Task{})
	m := NewManager(db, Config{})
	ctx := f.Context()
	orig, err := m.Create(ctx, In{Command: "echo", TaskType: TypePython, Parameters: json.RawMessage(`{"x":1}`), Enabled: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, patch []byte) {
		if !json.Valid(patch) {
			return
		}
		before, err := m.Get(ctx, orig.ID)
		if err != nil {
			t.Fatal(err)
		}
		got, err := m.Patch(ctx, orig.ID, patch)
		if err != nil {
			if !problem.Is(err, problem.KindRequestInvalid) {
				t.Fatalf("Patch(%s) error of kind %v: %v", patch, problem.KindOf(err), err)
			}
			after, _ := m.Get(ctx, orig.ID)
			if !sameContent(before, after) {
				t.Fatalf("refused patch %s changed the task", patch)
			}
			return
		}
		if got.TaskType != TypeShell && got.TaskType != TypePython {
			t.Fatalf("patch %s stored task_type %q", patch, got.TaskType)
		}
		if len(got.Parameters) > 0 {
			var obj map[string]any
			if json.Unmarshal(got.Parameters, &obj) != nil {
				t.Fatalf("patch %s stored parameters %s", patch, got.Parameters)
			}
		}
	})
}
