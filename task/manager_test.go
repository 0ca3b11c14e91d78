package task

import (
	"context"
	"encoding/json"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mattn/go-sqlite3"

	"github.com/chapkit-go/chapkit/artifact"
	"github.com/chapkit-go/chapkit/internal/dbtest"
	"github.com/chapkit-go/chapkit/problem"
	"github.com/chapkit-go/chapkit/registry"
)

// view is the part of a task the update tests compare.
type view struct {
	Command    string
	TaskType   string
	Parameters string
	Enabled    bool
}

func viewOf(t *Task) view {
	return view{Command: t.Command, TaskType: t.TaskType, Parameters: string(t.Parameters), Enabled: t.Enabled}
}

// backdate moves a task's timestamps into the past, so a later change of
// updated_at is visible whatever the clock resolution.
func backdate(tb testing.TB, m *Manager, id string) *Task {
	tb.Helper()
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	err := m.db.Model(&Task{}).Where("id = ?", id).Updates(map[string]any{"created_at": old, "updated_at": old}).Error
	if err != nil {
		tb.Fatal(err)
	}
	return mustGet(tb, m, id)
}

func TestCreateAndGet(t *testing.T) {
	ctx := t.Context()

	t.Run("generates id and timestamps", func(t *testing.T) {
		m, _ := newStore(t)
		before := time.Now().Add(-time.Second)
		created := mustCreate(t, m, `{"command":"echo 'test task creation'"}`)
		if len(created.ID) != 26 {
			t.Errorf("id = %q, want a 26-character ULID", created.ID)
		}
		if created.CreatedAt.Before(before) || !created.UpdatedAt.Equal(created.CreatedAt) {
			t.Errorf("created_at = %v, updated_at = %v, want both now and equal", created.CreatedAt, created.UpdatedAt)
		}
		got := mustGet(t, m, created.ID)
		if diff := cmp.Diff(created.Out(), got.Out()); diff != "" {
			t.Errorf("Get(%s) mismatch (-want +got):\n%s", created.ID, diff)
		}
		want := Out{ID: created.ID, CreatedAt: got.Out().CreatedAt, UpdatedAt: got.Out().UpdatedAt,
			Command: "echo 'test task creation'", TaskType: TypeShell, Enabled: true}
		if diff := cmp.Diff(want, got.Out()); diff != "" {
			t.Errorf("Out mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("wire shape has the eight keys", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, `{"command":"sum","task_type":"python","parameters":{"a":5,"b":10},"enabled":false}`)
		raw, err := json.Marshal(created.Out())
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"id": created.ID, "created_at": got["created_at"], "updated_at": got["updated_at"],
			"command": "sum", "task_type": "python", "parameters": map[string]any{"a": 5.0, "b": 10.0},
			"enabled": false, "timeout_seconds": nil,
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Out JSON mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("explicit new id is kept", func(t *testing.T) {
		m, _ := newStore(t)
		const id = "01K72P5N5KCRM6MD3BRE4P0999"
		created := mustCreate(t, m, `{"id":"`+id+`","command":"c"}`)
		if created.ID != id {
			t.Errorf("id = %s, want %s", created.ID, id)
		}
		mustGet(t, m, id)
	})

	t.Run("existing id upserts by the PUT rules", func(t *testing.T) {
		m, _ := newStore(t)
		stored := mustCreate(t, m, `{"command":"a","task_type":"python","parameters":{"x":1},"enabled":false}`)
		stored = backdate(t, m, stored.ID)
		got, err := m.Create(ctx, mustIn(t, `{"id":"`+stored.ID+`","command":"b"}`))
		if err != nil {
			t.Fatal(err)
		}
		want := view{Command: "b", TaskType: TypeShell, Parameters: `{"x":1}`, Enabled: true}
		if diff := cmp.Diff(want, viewOf(got)); diff != "" {
			t.Errorf("upsert result mismatch (-want +got):\n%s", diff)
		}
		reread := mustGet(t, m, stored.ID)
		if diff := cmp.Diff(want, viewOf(reread)); diff != "" {
			t.Errorf("stored after upsert mismatch (-want +got):\n%s", diff)
		}
		if !reread.CreatedAt.Equal(stored.CreatedAt) || !reread.UpdatedAt.After(stored.UpdatedAt) {
			t.Errorf("created_at %v -> %v, updated_at %v -> %v; want created_at kept and updated_at moved on",
				stored.CreatedAt, reread.CreatedAt, stored.UpdatedAt, reread.UpdatedAt)
		}
		if n, err := m.Count(ctx); err != nil || n != 1 {
			t.Errorf("Count = %d, %v, want 1 task", n, err)
		}
	})

	t.Run("unknown id is not found", func(t *testing.T) {
		m, _ := newStore(t)
		const id = "01K72P5N5KCRM6MD3BRE4P0999"
		_, err := m.Get(ctx, id)
		pe := problemOf(t, err)
		if pe.Kind != problem.KindNotFound || pe.Detail != "Entity with id "+id+" not found" {
			t.Errorf("Get(unknown) = kind %v detail %q, want KindNotFound %q", pe.Kind, pe.Detail, "Entity with id "+id+" not found")
		}
	})
}

func TestList(t *testing.T) {
	ctx := t.Context()
	m, db := newStore(t)
	base := time.Date(2025, 10, 14, 10, 30, 0, 0, time.UTC)
	// Created with distinct, deliberately shuffled created_at values; the
	// last two enabled tasks share one to exercise the id tie-break.
	specs := []struct {
		enabled bool
		at      time.Time
	}{
		{true, base.Add(2 * time.Minute)},
		{false, base.Add(5 * time.Minute)},
		{true, base.Add(1 * time.Minute)},
		{false, base.Add(3 * time.Minute)},
		{true, base.Add(4 * time.Minute)},
		{true, base.Add(4 * time.Minute)},
	}
	var ids []string
	for _, s := range specs {
		body := `{"command":"echo","enabled":false}`
		if s.enabled {
			body = `{"command":"echo"}`
		}
		created := mustCreate(t, m, body)
		if err := db.Model(&Task{}).Where("id = ?", created.ID).Update("created_at", s.at).Error; err != nil {
			t.Fatal(err)
		}
		ids = append(ids, created.ID)
	}
	sorted := slices.Sorted(slices.Values(ids))
	// Enabled, newest first; ids[4] and ids[5] tie, higher id first.
	tie := []string{ids[4], ids[5]}
	slices.Sort(tie)
	wantEnabled := []string{tie[1], tie[0], ids[0], ids[2]}
	wantDisabled := []string{ids[1], ids[3]}
	yes, no := true, false

	tests := []struct {
		name      string
		params    ListParams
		wantIDs   []string
		wantTotal int64
	}{
		{"no filter by id", ListParams{}, sorted, 6},
		{"enabled newest first", ListParams{Enabled: &yes}, wantEnabled, 4},
		{"disabled newest first", ListParams{Enabled: &no}, wantDisabled, 2},
		{"page 1 without filter", ListParams{Page: 1, Size: 4}, sorted[:4], 6},
		{"page 2 without filter", ListParams{Page: 2, Size: 4}, sorted[4:], 6},
		{"page 1 with filter counts matches only", ListParams{Enabled: &yes, Page: 1, Size: 3}, wantEnabled[:3], 4},
		{"page 2 with filter", ListParams{Enabled: &yes, Page: 2, Size: 3}, wantEnabled[3:], 4},
		{"page past the end", ListParams{Enabled: &no, Page: 3, Size: 2}, []string{}, 2},
		{"offset past the int range", ListParams{Page: math.MaxInt, Size: 2}, []string{}, 6},
		{"page times size wraps to the first page", ListParams{Page: math.MaxInt/2 + 2, Size: 2}, []string{}, 6},
		{"largest size", ListParams{Page: 1, Size: math.MaxInt}, sorted, 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tasks, total, err := m.List(ctx, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, task := range tasks {
				got = append(got, task.ID)
			}
			if diff := cmp.Diff(tc.wantIDs, got); diff != "" {
				t.Errorf("List ids mismatch (-want +got):\n%s", diff)
			}
			if total != tc.wantTotal {
				t.Errorf("List total = %d, want %d", total, tc.wantTotal)
			}
		})
	}

	t.Run("empty match is an empty list", func(t *testing.T) {
		m, _ := newStore(t)
		mustCreate(t, m, `{"command":"echo"}`)
		tasks, total, err := m.List(ctx, ListParams{Enabled: &no})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(tasks)
		if string(raw) != "[]" || total != 0 {
			t.Errorf("List(enabled=false) = %s, total %d, want [] and 0", raw, total)
		}
	})
}

func TestUpdatePutRules(t *testing.T) {
	const stored = `{"command":"a","task_type":"python","parameters":{"x":1},"enabled":false}`
	tests := []struct {
		name string
		body string
		want view
	}{
		{"command only resets type and enabled", `{"command":"b"}`, view{"b", TypeShell, `{"x":1}`, true}},
		{"type and enabled sent", `{"command":"b","task_type":"python","enabled":false}`, view{"b", TypePython, `{"x":1}`, false}},
		{"null parameters kept", `{"command":"b","parameters":null}`, view{"b", TypeShell, `{"x":1}`, true}},
		{"empty parameters assigned", `{"command":"b","parameters":{}}`, view{"b", TypeShell, `{}`, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newStore(t)
			created := mustCreate(t, m, stored)
			got, err := m.Update(t.Context(), created.ID, mustIn(t, tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != created.ID {
				t.Errorf("id = %s, want %s", got.ID, created.ID)
			}
			if diff := cmp.Diff(tc.want, viewOf(got)); diff != "" {
				t.Errorf("Update(%s) result mismatch (-want +got):\n%s", tc.body, diff)
			}
			if diff := cmp.Diff(tc.want, viewOf(mustGet(t, m, created.ID))); diff != "" {
				t.Errorf("Update(%s) stored mismatch (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

func TestUpdate(t *testing.T) {
	ctx := t.Context()

	t.Run("body id is ignored", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, `{"command":"a"}`)
		got, err := m.Update(ctx, created.ID, mustIn(t, `{"id":"01K72P5N5KCRM6MD3BRE4P0999","command":"b"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != created.ID {
			t.Errorf("id = %s, want %s", got.ID, created.ID)
		}
		if _, err := m.Get(ctx, "01K72P5N5KCRM6MD3BRE4P0999"); !problem.Is(err, problem.KindNotFound) {
			t.Errorf("Get(body id) error = %v, want not found", err)
		}
	})

	t.Run("no-op keeps updated_at", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, `{"command":"a","parameters":{"k":"v"},"timeout_seconds":3}`)
		before := backdate(t, m, created.ID)
		got, err := m.Update(ctx, created.ID, mustIn(t, `{"command":"a"}`))
		if err != nil {
			t.Fatal(err)
		}
		after := mustGet(t, m, created.ID)
		if diff := cmp.Diff(before.Out(), after.Out()); diff != "" {
			t.Errorf("stored task changed by a no-op update (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(before.Out(), got.Out()); diff != "" {
			t.Errorf("Update result of a no-op (-want +got):\n%s", diff)
		}
	})

	t.Run("change bumps updated_at only", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, `{"command":"a"}`)
		before := backdate(t, m, created.ID)
		got, err := m.Update(ctx, created.ID, mustIn(t, `{"command":"b"}`))
		if err != nil {
			t.Fatal(err)
		}
		after := mustGet(t, m, created.ID)
		if !after.UpdatedAt.After(before.UpdatedAt) || !after.CreatedAt.Equal(before.CreatedAt) {
			t.Errorf("created_at %v -> %v, updated_at %v -> %v; want created_at kept and updated_at moved on",
				before.CreatedAt, after.CreatedAt, before.UpdatedAt, after.UpdatedAt)
		}
		if diff := cmp.Diff(after.Out(), got.Out()); diff != "" {
			t.Errorf("Update result differs from the stored task (-stored +result):\n%s", diff)
		}
	})

	t.Run("timeout kept when omitted and replaced when sent", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, `{"command":"a","timeout_seconds":3}`)
		got, err := m.Update(ctx, created.ID, mustIn(t, `{"command":"b"}`))
		if err != nil {
			t.Fatal(err)
		}
		if got.TimeoutSeconds == nil || *got.TimeoutSeconds != 3 {
			t.Errorf("timeout_seconds = %v, want 3 kept", deref(got.TimeoutSeconds))
		}
		got, err = m.Update(ctx, created.ID, mustIn(t, `{"command":"b","timeout_seconds":9}`))
		if err != nil {
			t.Fatal(err)
		}
		if got.TimeoutSeconds == nil || *got.TimeoutSeconds != 9 {
			t.Errorf("returned timeout_seconds = %v, want 9", deref(got.TimeoutSeconds))
		}
		if stored := mustGet(t, m, created.ID); stored.TimeoutSeconds == nil || *stored.TimeoutSeconds != 9 {
			t.Errorf("stored timeout_seconds = %v, want 9", deref(stored.TimeoutSeconds))
		}
	})

	t.Run("unknown id is not found", func(t *testing.T) {
		m, _ := newStore(t)
		_, err := m.Update(ctx, "01K72P5N5KCRM6MD3BRE4P0999", mustIn(t, `{"command":"b"}`))
		if !problem.Is(err, problem.KindNotFound) {
			t.Errorf("Update(unknown) error = %v, want KindNotFound", err)
		}
	})
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(tb testing.TB, want, got string) string {
	tb.Helper()
	var w, g any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		tb.Fatalf("want %s: %v", want, err)
	}
	if got == "" {
		got = "null"
	}
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		tb.Fatalf("got %s: %v", got, err)
	}
	return cmp.Diff(w, g)
}

func TestPatch(t *testing.T) {
	const stored = `{"command":"calc","task_type":"python","parameters":{"x":1,"y":{"a":1,"b":2}},"enabled":true,"timeout_seconds":7}`
	tests := []struct {
		name       string
		patch      string
		want       view // Parameters compared as JSON
		wantChange bool
	}{
		{"enabled false keeps the rest", `{"enabled":false}`, view{"calc", TypePython, `{"x":1,"y":{"a":1,"b":2}}`, false}, true},
		{"empty patch", `{}`, view{"calc", TypePython, `{"x":1,"y":{"a":1,"b":2}}`, true}, false},
		{"same values", `{"command":"calc","enabled":true}`, view{"calc", TypePython, `{"x":1,"y":{"a":1,"b":2}}`, true}, false},
		{"null parameters clears", `{"parameters":null}`, view{"calc", TypePython, `null`, true}, true},
		{"nested object merges", `{"parameters":{"y":{"b":null,"c":3},"z":true}}`, view{"calc", TypePython, `{"x":1,"y":{"a":1,"c":3},"z":true}`, true}, true},
		{"function alias stored as python", `{"task_type":"function","command":"other"}`, view{"other", TypePython, `{"x":1,"y":{"a":1,"b":2}}`, true}, true},
		{"to shell", `{"task_type":"shell","command":"echo hi"}`, view{"echo hi", TypeShell, `{"x":1,"y":{"a":1,"b":2}}`, true}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newStore(t)
			created := mustCreate(t, m, stored)
			before := backdate(t, m, created.ID)
			got, err := m.Patch(t.Context(), created.ID, json.RawMessage(tc.patch))
			if err != nil {
				t.Fatalf("Patch(%s): %v", tc.patch, err)
			}
			after := mustGet(t, m, created.ID)
			for _, task := range []*Task{got, after} {
				v := viewOf(task)
				if diff := jsonEqual(t, tc.want.Parameters, v.Parameters); diff != "" {
					t.Errorf("Patch(%s) parameters mismatch (-want +got):\n%s", tc.patch, diff)
				}
				v.Parameters = tc.want.Parameters
				if diff := cmp.Diff(tc.want, v); diff != "" {
					t.Errorf("Patch(%s) mismatch (-want +got):\n%s", tc.patch, diff)
				}
				if task.TimeoutSeconds == nil || *task.TimeoutSeconds != 7 {
					t.Errorf("Patch(%s) timeout_seconds = %v, want 7 kept", tc.patch, deref(task.TimeoutSeconds))
				}
			}
			if changed := !after.UpdatedAt.Equal(before.UpdatedAt); changed != tc.wantChange {
				t.Errorf("Patch(%s) changed updated_at = %v, want %v", tc.patch, changed, tc.wantChange)
			}
			if !after.CreatedAt.Equal(before.CreatedAt) {
				t.Errorf("Patch(%s) changed created_at %v -> %v", tc.patch, before.CreatedAt, after.CreatedAt)
			}
			if tc.want.Parameters == "null" {
				raw, _ := json.Marshal(after.Out())
				var out map[string]any
				_ = json.Unmarshal(raw, &out)
				if v, ok := out["parameters"]; !ok || v != nil {
					t.Errorf("Out parameters = %v (present %v), want null", v, ok)
				}
			}
		})
	}
}

func TestPatchInvalid(t *testing.T) {
	// Stored disabled, so a null enabled or task_type that fell back to its
	// default (true, "shell") would show.
	const stored = `{"command":"calc","task_type":"python","parameters":{"x":1},"enabled":false}`
	tests := []struct {
		name  string
		patch string
		locs  [][]any // loc of each violation, in order
	}{
		{"null command", `{"command":null}`, [][]any{{"body", "command"}}},
		{"null task_type", `{"task_type":null}`, [][]any{{"body", "task_type"}}},
		{"null enabled", `{"enabled":null}`, [][]any{{"body", "enabled"}}},
		{"null enabled with other members", `{"enabled":null,"command":"other"}`, [][]any{{"body", "enabled"}}},
		{"wrong parameters type", `{"parameters":[1]}`, [][]any{{"body", "parameters"}}},
		{"wrong task_type", `{"task_type":"perl"}`, [][]any{{"body", "task_type"}}},
		{"several at once", `{"command":1,"enabled":"maybe"}`, [][]any{{"body", "command"}, {"body", "enabled"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newStore(t)
			created := mustCreate(t, m, stored)
			before := backdate(t, m, created.ID)
			got, err := m.Patch(t.Context(), created.ID, json.RawMessage(tc.patch))
			if err == nil {
				t.Errorf("Patch(%s) = %+v, want a validation error", tc.patch, viewOf(got))
			} else {
				pe := problemOf(t, err)
				if pe.Kind != problem.KindRequestInvalid {
					t.Errorf("Patch(%s) kind = %v, want KindRequestInvalid", tc.patch, pe.Kind)
				}
				var locs [][]any
				for _, v := range pe.Items {
					locs = append(locs, v.Loc)
				}
				if diff := cmp.Diff(tc.locs, locs); diff != "" {
					t.Errorf("Patch(%s) violation locs mismatch (-want +got):\n%s", tc.patch, diff)
				}
			}
			if diff := cmp.Diff(before.Out(), mustGet(t, m, created.ID).Out()); diff != "" {
				t.Errorf("Patch(%s) changed the task (-want +got):\n%s", tc.patch, diff)
			}
		})
	}

	t.Run("wrong types report the decoder's violations", func(t *testing.T) {
		m, _ := newStore(t)
		created := mustCreate(t, m, stored)
		_, err := m.Patch(t.Context(), created.ID, json.RawMessage(`{"command":1,"enabled":"maybe"}`))
		want := []problem.Violation{
			{Type: "string_type", Loc: []any{"body", "command"}, Msg: "Input should be a valid string", Input: json.Number("1")},
			{Type: "bool_type", Loc: []any{"body", "enabled"}, Msg: "Input should be a valid boolean", Input: "maybe"},
		}
		if diff := cmp.Diff(want, problemOf(t, err).Items); diff != "" {
			t.Errorf("violations mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("unknown id is not found", func(t *testing.T) {
		m, _ := newStore(t)
		_, err := m.Patch(t.Context(), "01K72P5N5KCRM6MD3BRE4P0999", json.RawMessage(`{"enabled":false}`))
		if !problem.Is(err, problem.KindNotFound) {
			t.Errorf("Patch(unknown) error = %v, want KindNotFound", err)
		}
	})
}

func TestDelete(t *testing.T) {
	ctx := t.Context()
	m, _ := newStore(t)
	keep := mustCreate(t, m, `{"command":"keep"}`)
	gone := mustCreate(t, m, `{"command":"gone"}`)
	if err := m.Delete(ctx, gone.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := "Entity with id " + gone.ID + " not found"
	for name, err := range map[string]error{
		"Get":    func() error { _, err := m.Get(ctx, gone.ID); return err }(),
		"Delete": m.Delete(ctx, gone.ID),
	} {
		pe := problemOf(t, err)
		if pe.Kind != problem.KindNotFound || pe.Detail != want {
			t.Errorf("%s after delete = kind %v detail %q, want KindNotFound %q", name, pe.Kind, pe.Detail, want)
		}
	}
	mustGet(t, m, keep.ID)
	if n, err := m.Count(ctx); err != nil || n != 1 {
		t.Errorf("Count = %d, %v, want 1", n, err)
	}
}

// fakeJobs is a job submitter that records submissions.
type fakeJobs struct {
	mu    sync.Mutex
	calls []fakeSubmit
	err   error
}

type fakeSubmit struct {
	Kind string
	Args string
}

func (f *fakeJobs) Submit(_ context.Context, kind string, args any) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	raw, err := json.Marshal(args)
	if err != nil {
		return "", err
	}
	f.calls = append(f.calls, fakeSubmit{Kind: kind, Args: string(raw)})
	if f.err != nil {
		return "", f.err
	}
	return "01K72P5N5KCRM6MD3BRE4PJ0B0", nil
}

func (f *fakeJobs) SubmitMany(ctx context.Context, kind string, args []any) ([]string, error) {
	ids := make([]string, len(args))
	for i, a := range args {
		id, err := f.Submit(ctx, kind, a)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

func TestExecuteChecks(t *testing.T) {
	db := dbtest.Open(t, &Task{}, &artifact.Artifact{})
	arts := artifact.NewManager(db, nil)
	store := NewManager(db, Config{})
	enabled := mustCreate(t, store, `{"command":"echo hi"}`)
	disabled := mustCreate(t, store, `{"command":"echo hi","enabled":false}`)
	const unknown = "01K72P5N5KCRM6MD3BRE4P0999"

	tests := []struct {
		name    string
		noJobs  bool
		noArts  bool
		id      string
		wantMsg string
	}{
		{"no scheduler and no artifacts", true, true, unknown, "Task execution requires a scheduler. Use ServiceBuilder.with_jobs() to enable."},
		{"no scheduler", true, false, enabled.ID, "Task execution requires a scheduler. Use ServiceBuilder.with_jobs() to enable."},
		{"no artifacts", false, true, unknown, "Task execution requires artifacts. Use ServiceBuilder.with_artifacts() before with_tasks()."},
		{"unknown task", false, false, unknown, "Task " + unknown + " not found"},
		{"disabled task", false, false, disabled.ID, "Cannot execute disabled task " + disabled.ID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs := &fakeJobs{}
			cfg := Config{Jobs: jobs, Artifacts: arts}
			if tc.noJobs {
				cfg.Jobs = nil
			}
			if tc.noArts {
				cfg.Artifacts = nil
			}
			_, err := NewManager(db, cfg).Execute(t.Context(), tc.id)
			pe := problemOf(t, err)
			if pe.Kind != problem.KindBadRequest || pe.Detail != tc.wantMsg {
				t.Errorf("Execute = kind %v detail %q, want KindBadRequest %q", pe.Kind, pe.Detail, tc.wantMsg)
			}
			if len(jobs.calls) != 0 {
				t.Errorf("Execute submitted %v, want nothing", jobs.calls)
			}
		})
	}

	t.Run("enabled task submits one job", func(t *testing.T) {
		python := mustCreate(t, store, `{"command":"fn","task_type":"python"}`)
		for _, task := range []*Task{enabled, python} {
			jobs := &fakeJobs{}
			id, err := NewManager(db, Config{Jobs: jobs, Artifacts: arts}).Execute(t.Context(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			if id != "01K72P5N5KCRM6MD3BRE4PJ0B0" {
				t.Errorf("job id = %s, want the scheduler's", id)
			}
			// The submission records the version it read (the task's own
			// updated_at), which a job starting with it runs.
			stamp, err := json.Marshal(task.UpdatedAt.UTC())
			if err != nil {
				t.Fatal(err)
			}
			want := []fakeSubmit{{Kind: JobKind, Args: `{"task_id":"` + task.ID + `","task_type":"` + task.TaskType + `","task_updated_at":` + string(stamp) + `}`}}
			if diff := cmp.Diff(want, jobs.calls); diff != "" {
				t.Errorf("submissions mismatch (-want +got):\n%s", diff)
			}
		}
	})

	t.Run("submission failure is a conflict", func(t *testing.T) {
		jobs := &fakeJobs{err: registry.NewError("RuntimeError", "Job 01K72P5N5KCRM6MD3BRE4PJ0B0 already scheduled")}
		_, err := NewManager(db, Config{Jobs: jobs, Artifacts: arts}).Execute(t.Context(), enabled.ID)
		pe := problemOf(t, err)
		if pe.Kind != problem.KindConflict || pe.Detail != "Job 01K72P5N5KCRM6MD3BRE4PJ0B0 already scheduled" {
			t.Errorf("Execute = kind %v detail %q, want KindConflict with the scheduler's text", pe.Kind, pe.Detail)
		}
	})

	t.Run("storage failures of the scheduler pass through", func(t *testing.T) {
		const op = "job.Scheduler.Submit"
		tests := []struct {
			name       string
			cause      error
			wantKind   problem.Kind
			wantDetail string
		}{
			{"locked", sqlite3.Error{Code: sqlite3.ErrBusy}, problem.KindUnavailable, problem.DatabaseBusyDetail},
			{"other", sqlite3.Error{Code: sqlite3.ErrIoErr}, problem.KindDatabase, "Database error occurred"},
		}
		for _, tc := range tests {
			jobs := &fakeJobs{err: problem.Database(op, tc.cause)}
			_, err := NewManager(db, Config{Jobs: jobs, Artifacts: arts}).Execute(t.Context(), enabled.ID)
			pe := problemOf(t, err)
			if pe.Kind != tc.wantKind || pe.Detail != tc.wantDetail {
				t.Errorf("%s: Execute = kind %v detail %q, want %v %q", tc.name, pe.Kind, pe.Detail, tc.wantKind, tc.wantDetail)
			}
		}
	})

	t.Run("unavailable scheduler passes through", func(t *testing.T) {
		unavailable := problem.Unavailable("job.Scheduler", 30, "The service is shutting down and accepts no new jobs")
		jobs := &fakeJobs{err: unavailable}
		_, err := NewManager(db, Config{Jobs: jobs, Artifacts: arts}).Execute(t.Context(), enabled.ID)
		pe := problemOf(t, err)
		if pe.Kind != problem.KindUnavailable || pe.RetryAfter != 30 {
			t.Errorf("Execute = kind %v retry-after %d, want KindUnavailable 30", pe.Kind, pe.RetryAfter)
		}
	})
}

func TestValidateOrphans(t *testing.T) {
	ctx := t.Context()
	nop := func(context.Context, struct{}) (int, error) { return 0, nil }
	newReg := func(names ...string) *registry.Registry {
		reg := registry.New()
		for _, n := range names {
			registry.MustRegister(reg, n, nop)
		}
		return reg
	}

	tests := []struct {
		name  string
		reg   *registry.Registry
		tasks []string // TaskIn bodies
		want  int
		// wantEnabled is the enabled flag of each task afterwards.
		wantEnabled []bool
	}{
		{"no tasks", newReg("f"), nil, 0, nil},
		{"only shell tasks", newReg(), []string{`{"command":"echo a"}`, `{"command":"missing","enabled":false}`}, 0, []bool{true, false}},
		{"all registered", newReg("f", "g"), []string{`{"command":"f","task_type":"python"}`, `{"command":"g","task_type":"python"}`, `{"command":"echo"}`}, 0, []bool{true, true, true}},
		{"one orphan", newReg("f"), []string{`{"command":"f","task_type":"python"}`, `{"command":"gone","task_type":"python","parameters":{"p":1}}`, `{"command":"gone"}`}, 1, []bool{true, false, true}},
		{"two of three orphans", newReg("f"), []string{`{"command":"a","task_type":"python"}`, `{"command":"f","task_type":"python"}`, `{"command":"b","task_type":"python"}`}, 2, []bool{false, true, false}},
		{"already disabled orphan counted again", newReg(), []string{`{"command":"x","task_type":"python","enabled":false}`}, 1, []bool{false}},
		{"nil registry", nil, []string{`{"command":"x","task_type":"python"}`, `{"command":"echo"}`}, 1, []bool{false, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := newStore(t)
			var before []*Task
			for _, body := range tc.tasks {
				created := mustCreate(t, m, body)
				before = append(before, backdate(t, m, created.ID))
			}
			for round := range 2 {
				got, err := m.ValidateOrphans(ctx, tc.reg)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.want {
					t.Errorf("ValidateOrphans round %d = %d, want %d", round+1, got, tc.want)
				}
			}
			for i, b := range before {
				after := mustGet(t, m, b.ID)
				want := viewOf(b)
				want.Enabled = tc.wantEnabled[i]
				if diff := cmp.Diff(want, viewOf(after)); diff != "" {
					t.Errorf("task %d after validation mismatch (-want +got):\n%s", i, diff)
				}
				if unchanged := b.Enabled == after.Enabled; unchanged && !after.UpdatedAt.Equal(b.UpdatedAt) {
					t.Errorf("task %d untouched by validation but updated_at %v -> %v", i, b.UpdatedAt, after.UpdatedAt)
				}
			}
		})
	}
}
