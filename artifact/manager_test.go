package artifact

import (
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/dbtest"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

type testBundle struct {
	db *gorm.DB
}

func setup(t *testing.T, h *Hierarchy) (*Manager, *testBundle) {
	t.Helper()
	db := dbtest.Open(t, &Artifact{})
	return NewManager(db, h), &testBundle{db: db}
}

func ptr(s string) *string { return &s }

func mustCreate(t *testing.T, m *Manager, in In) *Artifact {
	t.Helper()
	a, err := m.Create(t.Context(), in)
	if err != nil {
		t.Fatalf("Create(%+v): %v", in, err)
	}
	return a
}

func mustGet(t *testing.T, m *Manager, id string) *Artifact {
	t.Helper()
	a, err := m.Get(t.Context(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return a
}

// levels returns the stored level of each id.
func levels(t *testing.T, m *Manager, ids ...string) []int {
	t.Helper()
	var out []int
	for _, id := range ids {
		out = append(out, mustGet(t, m, id).Level)
	}
	return out
}

// wantProblem fails unless err is a *problem.Error of kind k with detail.
func wantProblem(t *testing.T, err error, k problem.Kind, detail string) {
	t.Helper()
	if !problem.Is(err, k) {
		t.Fatalf("error = %v (kind %v), want kind %v", err, problem.KindOf(err), k)
	}
	var pe *problem.Error
	if errors.As(err, &pe) && detail != "" && pe.Detail != detail {
		t.Errorf("detail = %q, want %q", pe.Detail, detail)
	}
}

func TestManagerCreate(t *testing.T) {
	t.Run("root and child levels", func(t *testing.T) {
		m, _ := setup(t, nil)
		root := mustCreate(t, m, In{Data: json.RawMessage(`{"name":"root"}`)})
		child := mustCreate(t, m, In{Data: json.RawMessage(`{"name":"child"}`), ParentID: &root.ID})
		grand := mustCreate(t, m, In{Data: json.RawMessage(`[1,2]`), ParentID: &child.ID})

		if !wire.ValidID(root.ID) {
			t.Errorf("generated id %q is not a ULID", root.ID)
		}
		if diff := cmp.Diff([]int{0, 1, 2}, levels(t, m, root.ID, child.ID, grand.ID)); diff != "" {
			t.Errorf("levels mismatch (-want +got):\n%s", diff)
		}
		got := mustGet(t, m, child.ID)
		if diff := cmp.Diff(child.Out(), got.Out()); diff != "" {
			t.Errorf("stored child differs from created (-want +got):\n%s", diff)
		}
		if got.ParentID == nil || *got.ParentID != root.ID {
			t.Errorf("child parent_id = %v, want %s", got.ParentID, root.ID)
		}
	})

	t.Run("client id kept", func(t *testing.T) {
		m, _ := setup(t, nil)
		id := "01K72P5N5KCRM6MD3BRE4P0999"
		if a := mustCreate(t, m, In{ID: id, Data: json.RawMessage(`1`)}); a.ID != id {
			t.Errorf("id = %s, want %s", a.ID, id)
		}
	})

	t.Run("unknown parent is a database error", func(t *testing.T) {
		m, b := setup(t, nil)
		_, err := m.Create(t.Context(), In{Data: json.RawMessage(`{}`), ParentID: ptr(wire.NewID())})
		wantProblem(t, err, problem.KindDatabase, "Database error occurred")
		var pe *problem.Error
		if errors.As(err, &pe) && (pe.Err.Error() != "FOREIGN KEY constraint failed" || !errors.Is(err, gorm.ErrForeignKeyViolated)) {
			t.Errorf("cause = %v, want SQLite's foreign-key text wrapping gorm.ErrForeignKeyViolated", pe.Err)
		}
		assertCount(t, b.db, 0)
	})

	t.Run("null data is a database error", func(t *testing.T) {
		for _, data := range []json.RawMessage{nil, json.RawMessage(`null`), json.RawMessage(" null ")} {
			m, b := setup(t, nil)
			_, err := m.Create(t.Context(), In{Data: data})
			wantProblem(t, err, problem.KindDatabase, "Database error occurred")
			var pe *problem.Error
			if errors.As(err, &pe) && pe.Err.Error() != "NOT NULL constraint failed: artifacts.data" {
				t.Errorf("cause = %v, want the NOT NULL failure", pe.Err)
			}
			assertCount(t, b.db, 0)
		}
	})

	t.Run("existing id updates instead", func(t *testing.T) {
		m, b := setup(t, nil)
		root := mustCreate(t, m, In{Data: json.RawMessage(`{}`)})
		a := mustCreate(t, m, In{Data: json.RawMessage(`{"v":1}`), ParentID: &root.ID})

		got := mustCreate(t, m, In{ID: a.ID, Data: json.RawMessage(`{"v":2}`)})
		want := Artifact{ID: a.ID, ParentID: &root.ID, Data: json.RawMessage(`{"v":2}`), Level: 1, Tags: Tags{}, CreatedAt: a.CreatedAt}
		if diff := cmp.Diff(want, *got, cmpIgnoreUpdated()); diff != "" {
			t.Errorf("upsert mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(got.Out(), mustGet(t, m, a.ID).Out()); diff != "" {
			t.Errorf("stored upsert differs from returned (-want +got):\n%s", diff)
		}

		// Null data on upsert keeps the stored data, as on PUT.
		kept := mustCreate(t, m, In{ID: a.ID, Data: json.RawMessage(`null`)})
		if string(kept.Data) != `{"v":2}` {
			t.Errorf("data after null upsert = %s, want {\"v\":2}", kept.Data)
		}
		assertCount(t, b.db, 2)
	})
}

func TestManagerUpdate(t *testing.T) {
	t.Run("moving a subtree re-levels descendants", func(t *testing.T) {
		m, _ := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`"a"`)})
		b := mustCreate(t, m, In{Data: json.RawMessage(`"b"`), ParentID: &a.ID})
		c := mustCreate(t, m, In{Data: json.RawMessage(`"c"`), ParentID: &b.ID})
		d := mustCreate(t, m, In{Data: json.RawMessage(`"d"`), ParentID: &c.ID})
		c2 := mustCreate(t, m, In{Data: json.RawMessage(`"c2"`), ParentID: &b.ID})
		r := mustCreate(t, m, In{Data: json.RawMessage(`"r"`)})
		x := mustCreate(t, m, In{Data: json.RawMessage(`"x"`), ParentID: &r.ID})
		y := mustCreate(t, m, In{Data: json.RawMessage(`"y"`), ParentID: &x.ID})

		got, err := m.Update(t.Context(), b.ID, In{Data: json.RawMessage(`"b"`), ParentID: &y.ID})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if got.Level != 3 || got.ParentID == nil || *got.ParentID != y.ID {
			t.Errorf("moved artifact level %d parent %v, want 3 under %s", got.Level, got.ParentID, y.ID)
		}
		if diff := cmp.Diff([]int{0, 3, 4, 5, 4, 0, 1, 2}, levels(t, m, a.ID, b.ID, c.ID, d.ID, c2.ID, r.ID, x.ID, y.ID)); diff != "" {
			t.Errorf("levels after move (-want +got):\n%s", diff)
		}

		// Moving back up to a root re-levels again.
		if _, err := m.Update(t.Context(), b.ID, In{ParentID: &a.ID}); err != nil {
			t.Fatalf("Update back: %v", err)
		}
		if diff := cmp.Diff([]int{1, 2, 3, 2}, levels(t, m, b.ID, c.ID, d.ID, c2.ID)); diff != "" {
			t.Errorf("levels after moving back (-want +got):\n%s", diff)
		}
	})

	t.Run("data-only update keeps levels", func(t *testing.T) {
		m, _ := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`1`)})
		b := mustCreate(t, m, In{Data: json.RawMessage(`2`), ParentID: &a.ID})
		c := mustCreate(t, m, In{Data: json.RawMessage(`3`), ParentID: &b.ID})

		got, err := m.Update(t.Context(), b.ID, In{Data: json.RawMessage(`{"new":true}`)})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if string(got.Data) != `{"new":true}` || got.ParentID == nil || *got.ParentID != a.ID {
			t.Errorf("updated = data %s parent %v, want {\"new\":true} under %s", got.Data, got.ParentID, a.ID)
		}
		// Sending the same parent is not a move.
		if _, err := m.Update(t.Context(), b.ID, In{Data: json.RawMessage(`5`), ParentID: &a.ID}); err != nil {
			t.Fatalf("Update same parent: %v", err)
		}
		if diff := cmp.Diff([]int{0, 1, 2}, levels(t, m, a.ID, b.ID, c.ID)); diff != "" {
			t.Errorf("levels (-want +got):\n%s", diff)
		}
	})

	t.Run("updated_at moves only on change", func(t *testing.T) {
		m, bd := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`{"a":1,"b":2}`)})
		old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := bd.db.Model(&Artifact{}).Where("id = ?", a.ID).Update("updated_at", old).Error; err != nil {
			t.Fatal(err)
		}

		for _, data := range []string{`null`, `{"a":1,"b":2}`, `{"b": 2, "a": 1}`} {
			if _, err := m.Update(t.Context(), a.ID, In{Data: json.RawMessage(data)}); err != nil {
				t.Fatalf("Update(%s): %v", data, err)
			}
			if got := mustGet(t, m, a.ID).UpdatedAt; !got.Equal(old) {
				t.Errorf("Update(%s) without change moved updated_at to %v", data, got)
			}
		}
		got, err := m.Update(t.Context(), a.ID, In{Data: json.RawMessage(`{"a":2}`)})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		stored := mustGet(t, m, a.ID)
		if !stored.UpdatedAt.After(old) || !stored.UpdatedAt.Equal(got.UpdatedAt) || !stored.CreatedAt.Equal(a.CreatedAt) {
			t.Errorf("after change: updated_at %v (returned %v), created_at %v; want updated after %v, created %v",
				stored.UpdatedAt, got.UpdatedAt, stored.CreatedAt, old, a.CreatedAt)
		}
	})

	t.Run("not found", func(t *testing.T) {
		m, _ := setup(t, nil)
		id := wire.NewID()
		_, err := m.Update(t.Context(), id, In{Data: json.RawMessage(`1`)})
		wantProblem(t, err, problem.KindNotFound, "Entity with id "+id+" not found")
	})

	t.Run("unknown new parent is a database error", func(t *testing.T) {
		m, _ := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`1`)})
		_, err := m.Update(t.Context(), a.ID, In{ParentID: ptr(wire.NewID())})
		wantProblem(t, err, problem.KindDatabase, "")
		if got := mustGet(t, m, a.ID); got.ParentID != nil {
			t.Errorf("parent_id = %v after failed update, want nil", *got.ParentID)
		}
	})

	t.Run("cycle does not hang", func(t *testing.T) {
		m, _ := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`1`)})
		b := mustCreate(t, m, In{Data: json.RawMessage(`2`), ParentID: &a.ID})
		if _, err := m.Update(t.Context(), a.ID, In{ParentID: &b.ID}); err != nil {
			t.Fatalf("Update: %v", err)
		}
		tree, err := m.Tree(t.Context(), a.ID)
		if err != nil {
			t.Fatalf("Tree: %v", err)
		}
		if len(tree.Children) != 1 || len(tree.Children[0].Children) != 0 {
			t.Errorf("tree of a cycle = %+v, want a with one leaf child", tree)
		}
	})
}

func TestManagerDelete(t *testing.T) {
	t.Run("children detached keep their level", func(t *testing.T) {
		m, b := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`1`)})
		c := mustCreate(t, m, In{Data: json.RawMessage(`2`), ParentID: &a.ID})
		g := mustCreate(t, m, In{Data: json.RawMessage(`3`), ParentID: &c.ID})

		if err := m.Delete(t.Context(), c.ID); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		_, err := m.Get(t.Context(), c.ID)
		wantProblem(t, err, problem.KindNotFound, "Entity with id "+c.ID+" not found")
		got := mustGet(t, m, g.ID)
		if got.ParentID != nil || got.Level != 2 {
			t.Errorf("orphan parent %v level %d, want nil and 2", got.ParentID, got.Level)
		}
		assertCount(t, b.db, 2)
	})

	t.Run("not found", func(t *testing.T) {
		m, _ := setup(t, nil)
		id := wire.NewID()
		wantProblem(t, m.Delete(t.Context(), id), problem.KindNotFound, "Entity with id "+id+" not found")
	})
}

func TestManagerList(t *testing.T) {
	m, _ := setup(t, nil)
	var ids []string
	for range 5 {
		ids = append(ids, wire.NewID())
	}
	for _, i := range []int{3, 0, 4, 1, 2} {
		mustCreate(t, m, In{ID: ids[i], Data: json.RawMessage(`{}`)})
	}

	tests := []struct {
		name      string
		page      int
		size      int
		wantIDs   []string
		wantTotal int64
	}{
		{"all", 0, 0, ids, 5},
		{"first page", 1, 2, ids[:2], 5},
		{"second page", 2, 2, ids[2:4], 5},
		{"last partial page", 3, 2, ids[4:], 5},
		{"beyond the end", 4, 2, []string{}, 5},
		{"size over total", 1, 100, ids, 5},
		{"offset past the int range", math.MaxInt, 2, []string{}, 5},
		{"page times size wraps to the first page", math.MaxInt/2 + 2, 2, []string{}, 5},
		{"largest size", 1, math.MaxInt, ids, 5},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			items, total, err := m.List(t.Context(), tc.page, tc.size)
			if err != nil {
				t.Fatalf("List(%d, %d): %v", tc.page, tc.size, err)
			}
			got := []string{}
			for _, a := range items {
				got = append(got, a.ID)
			}
			if diff := cmp.Diff(tc.wantIDs, got); diff != "" {
				t.Errorf("List(%d, %d) ids (-want +got):\n%s", tc.page, tc.size, diff)
			}
			if total != tc.wantTotal {
				t.Errorf("List(%d, %d) total = %d, want %d", tc.page, tc.size, total, tc.wantTotal)
			}
		})
	}

	t.Run("empty", func(t *testing.T) {
		m, _ := setup(t, nil)
		items, total, err := m.List(t.Context(), 0, 0)
		if err != nil || items == nil || len(items) != 0 || total != 0 {
			t.Errorf("List on empty table = %v, %d, %v; want [], 0, nil", items, total, err)
		}
	})
}

// shape is a tree node reduced to what nesting tests compare.
type shape struct {
	ID       string
	Level    int
	Children []shape
}

func shapeOf(n *TreeNode) shape {
	s := shape{ID: n.ID, Level: n.Level, Children: []shape{}}
	if n.Children == nil {
		s.Children = nil
	}
	for _, c := range n.Children {
		s.Children = append(s.Children, shapeOf(c))
	}
	return s
}

func TestManagerTree(t *testing.T) {
	t.Run("unordered inserts nest correctly", func(t *testing.T) {
		m, _ := setup(t, nil)
		// ids sort as root < s1 < s2 < l1 < l2 < l3; rows go in out of
		// that order (a child still after its parent, as the foreign key
		// requires).
		var id []string
		for range 6 {
			id = append(id, wire.NewID())
		}
		root, s1, s2, l1, l2, l3 := id[0], id[1], id[2], id[3], id[4], id[5]
		mustCreate(t, m, In{ID: root, Data: json.RawMessage(`"root"`)})
		mustCreate(t, m, In{ID: s2, Data: json.RawMessage(`"s2"`), ParentID: &root})
		mustCreate(t, m, In{ID: s1, Data: json.RawMessage(`"s1"`), ParentID: &root})
		mustCreate(t, m, In{ID: l3, Data: json.RawMessage(`"l3"`), ParentID: &s1})
		mustCreate(t, m, In{ID: l1, Data: json.RawMessage(`"l1"`), ParentID: &s2})
		mustCreate(t, m, In{ID: l2, Data: json.RawMessage(`"l2"`), ParentID: &s1})

		tree, err := m.Tree(t.Context(), root)
		if err != nil {
			t.Fatalf("Tree: %v", err)
		}
		want := shape{ID: root, Level: 0, Children: []shape{
			{ID: s1, Level: 1, Children: []shape{
				{ID: l2, Level: 2, Children: []shape{}},
				{ID: l3, Level: 2, Children: []shape{}},
			}},
			{ID: s2, Level: 1, Children: []shape{
				{ID: l1, Level: 2, Children: []shape{}},
			}},
		}}
		if diff := cmp.Diff(want, shapeOf(tree)); diff != "" {
			t.Errorf("Tree mismatch (-want +got):\n%s", diff)
		}

		// A subtree may start below the root.
		sub, err := m.Tree(t.Context(), s2)
		if err != nil {
			t.Fatalf("Tree(s2): %v", err)
		}
		if diff := cmp.Diff(want.Children[1], shapeOf(sub)); diff != "" {
			t.Errorf("Tree(s2) mismatch (-want +got):\n%s", diff)
		}

		b, err := json.Marshal(tree.Children[1].Children[0])
		if err != nil {
			t.Fatal(err)
		}
		var leaf map[string]any
		if err := json.Unmarshal(b, &leaf); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]any{}, leaf["children"]); diff != "" {
			t.Errorf("leaf children in JSON (-want +got):\n%s", diff)
		}
	})

	t.Run("not found", func(t *testing.T) {
		m, _ := setup(t, nil)
		id := wire.NewID()
		_, err := m.Tree(t.Context(), id)
		wantProblem(t, err, problem.KindNotFound, "Artifact with id "+id+" not found")
	})
}

func TestManagerExpand(t *testing.T) {
	ml := &Hierarchy{Name: "ml_experiment", LevelLabels: map[int]string{0: "experiment", 1: "stage", 2: "artifact"}}
	tests := []struct {
		name          string
		h             *Hierarchy
		depth         int
		wantLabel     any
		wantHierarchy any
	}{
		{"root", ml, 0, "experiment", "ml_experiment"},
		{"stage", ml, 1, "stage", "ml_experiment"},
		{"artifact", ml, 2, "artifact", "ml_experiment"},
		{"unlabelled", ml, 3, "level_3", "ml_experiment"},
		{"no hierarchy", nil, 1, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := setup(t, tc.h)
			a := mustCreate(t, m, In{Data: json.RawMessage(`{"k":"v"}`)})
			for range tc.depth {
				a = mustCreate(t, m, In{Data: json.RawMessage(`{"k":"v"}`), ParentID: &a.ID})
			}
			n, err := m.Expand(t.Context(), a.ID)
			if err != nil {
				t.Fatalf("Expand: %v", err)
			}
			var parent any
			if a.ParentID != nil {
				parent = *a.ParentID
			}
			want := map[string]any{
				"id": a.ID, "created_at": wire.FormatTime(a.CreatedAt), "updated_at": wire.FormatTime(a.UpdatedAt),
				"data": map[string]any{"k": "v"}, "parent_id": parent, "level": float64(tc.depth), "tags": []any{},
				"level_label": tc.wantLabel, "hierarchy": tc.wantHierarchy, "children": nil, "config": nil,
			}
			if diff := cmp.Diff(want, roundTrip(t, n)); diff != "" {
				t.Errorf("Expand JSON mismatch (-want +got):\n%s", diff)
			}

			tree, err := m.Tree(t.Context(), a.ID)
			if err != nil {
				t.Fatalf("Tree: %v", err)
			}
			if diff := cmp.Diff(n.LevelLabel, tree.LevelLabel); diff != "" {
				t.Errorf("Tree label differs from Expand (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("not found", func(t *testing.T) {
		m, _ := setup(t, ml)
		id := wire.NewID()
		_, err := m.Expand(t.Context(), id)
		wantProblem(t, err, problem.KindNotFound, "Artifact with id "+id+" not found")
	})
}

func TestManagerInsert(t *testing.T) {
	t.Run("rolled back with the transaction", func(t *testing.T) {
		m, b := setup(t, nil)
		var id string
		err := b.db.WithContext(t.Context()).Transaction(func(tx *gorm.DB) error {
			var err error
			if id, err = m.Insert(tx, json.RawMessage(`{"result":42}`)); err != nil {
				return err
			}
			return errRollback
		})
		if !errors.Is(err, errRollback) {
			t.Fatalf("Transaction = %v, want the rollback sentinel", err)
		}
		if !wire.ValidID(id) {
			t.Errorf("Insert id %q is not a ULID", id)
		}
		assertCount(t, b.db, 0)
	})

	t.Run("committed with the transaction", func(t *testing.T) {
		m, b := setup(t, nil)
		var id string
		err := b.db.WithContext(t.Context()).Transaction(func(tx *gorm.DB) error {
			var err error
			id, err = m.Insert(tx.Where("id = ?", "unrelated"), json.RawMessage(`{"result":42}`))
			return err
		})
		if err != nil {
			t.Fatalf("Transaction: %v", err)
		}
		got := mustGet(t, m, id)
		if string(got.Data) != `{"result":42}` || got.Level != 0 || got.ParentID != nil {
			t.Errorf("inserted = data %s level %d parent %v, want a root with the data", got.Data, got.Level, got.ParentID)
		}
	})

	t.Run("null data fails", func(t *testing.T) {
		m, b := setup(t, nil)
		_, err := m.Insert(b.db.WithContext(t.Context()), nil)
		wantProblem(t, err, problem.KindDatabase, "")
	})
}

func TestOutJSON(t *testing.T) {
	created := time.Date(2025, 10, 14, 10, 30, 0, 123000000, time.UTC)
	updated := time.Date(2025, 10, 14, 12, 30, 0, 0, time.FixedZone("CEST", 7200))
	parent := "01K72P5N5KCRM6MD3BRE4P0999"
	tests := []struct {
		name string
		in   Artifact
		want map[string]any
	}{
		{
			name: "root",
			in:   Artifact{ID: "01JCSEED0000000000000TASK1", Data: json.RawMessage(`{"a":[1,null]}`), CreatedAt: created, UpdatedAt: updated},
			want: map[string]any{
				"id": "01JCSEED0000000000000TASK1", "created_at": "2025-10-14T10:30:00.123Z", "updated_at": "2025-10-14T10:30:00Z",
				"data": map[string]any{"a": []any{1.0, nil}}, "parent_id": nil, "level": 0.0, "tags": []any{},
			},
		},
		{
			name: "child",
			in:   Artifact{ID: "01JCSEED0000000000000TASK1", ParentID: &parent, Data: json.RawMessage(`"s"`), Level: 2, CreatedAt: created, UpdatedAt: created},
			want: map[string]any{
				"id": "01JCSEED0000000000000TASK1", "created_at": "2025-10-14T10:30:00.123Z", "updated_at": "2025-10-14T10:30:00.123Z",
				"data": "s", "parent_id": parent, "level": 2.0, "tags": []any{},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, roundTrip(t, tc.in.Out())); diff != "" {
				t.Errorf("Out JSON mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("stored artifact", func(t *testing.T) {
		m, _ := setup(t, nil)
		a := mustCreate(t, m, In{Data: json.RawMessage(`{"x":1}`)})
		got := roundTrip(t, mustGet(t, m, a.ID).Out())
		keys := []string{}
		for k := range got {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if diff := cmp.Diff([]string{"created_at", "data", "id", "level", "parent_id", "tags", "updated_at"}, keys); diff != "" {
			t.Errorf("Out keys (-want +got):\n%s", diff)
		}
		for _, k := range []string{"created_at", "updated_at"} {
			s, _ := got[k].(string)
			ts, err := time.Parse(time.RFC3339Nano, s)
			if err != nil || s[len(s)-1] != 'Z' || !ts.Equal(a.CreatedAt) {
				t.Errorf("%s = %q, want RFC 3339 UTC with Z equal to %v", k, s, a.CreatedAt)
			}
		}
	})
}

func TestMigrateCreatesForeignKey(t *testing.T) {
	db := dbtest.Open(t)
	if err := Migrate(t.Context(), db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	if err := Migrate(t.Context(), db); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	var rows []struct {
		Table    string `gorm:"column:table"`
		From     string `gorm:"column:from"`
		OnDelete string `gorm:"column:on_delete"`
	}
	if err := db.Raw("PRAGMA foreign_key_list(artifacts)").Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	want := []struct {
		Table    string `gorm:"column:table"`
		From     string `gorm:"column:from"`
		OnDelete string `gorm:"column:on_delete"`
	}{{"artifacts", "parent_id", "SET NULL"}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("foreign keys (-want +got):\n%s", diff)
	}
}

var errRollback = errors.New("rollback")

func cmpIgnoreUpdated() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "UpdatedAt" }, cmp.Ignore())
}

func assertCount(t *testing.T, db *gorm.DB, want int64) {
	t.Helper()
	var n int64
	if err := db.Model(&Artifact{}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("artifacts rows = %d, want %d", n, want)
	}
}

func roundTrip(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("Unmarshal %s: %v", b, err)
	}
	return out
}

func TestTags(t *testing.T) {
	t.Parallel()
	m, b := setup(t, nil)
	ctx := t.Context()
	tags := func(v ...string) *[]string { return &v }
	a := mustCreate(t, m, In{Data: json.RawMessage(`1`), Tags: tags("model", "run-1")})
	plain := mustCreate(t, m, In{Data: json.RawMessage(`2`)})
	tricky := mustCreate(t, m, In{Data: json.RawMessage(`3`), Tags: tags(`x","model`, "Model")})
	if got := mustGet(t, m, plain.ID).Tags; got == nil || len(got) != 0 {
		t.Errorf("untagged artifact tags = %#v, want empty non-nil", got)
	}
	if diff := cmp.Diff(Tags{"model", "run-1"}, mustGet(t, m, a.ID).Tags); diff != "" {
		t.Errorf("stored tags (-want +got):\n%s", diff)
	}

	ids := func(tag string, page, size int) ([]string, int64) {
		t.Helper()
		arts, total, err := m.ListTagged(ctx, tag, page, size)
		if err != nil {
			t.Fatalf("ListTagged(%q): %v", tag, err)
		}
		var out []string
		for _, x := range arts {
			out = append(out, x.ID)
		}
		return out, total
	}
	for _, tc := range []struct {
		tag  string
		want []string
	}{
		{"model", []string{a.ID}}, // not the tag that contains "model" in quotes, nor "Model"
		{"Model", []string{tricky.ID}},
		{`x","model`, []string{tricky.ID}},
		{"mod", nil},
		{"", []string{a.ID, plain.ID, tricky.ID}},
	} {
		got, total := ids(tc.tag, 0, 0)
		if diff := cmp.Diff(tc.want, got); diff != "" || total != int64(len(tc.want)) {
			t.Errorf("ListTagged(%q) total %d (-want +got):\n%s", tc.tag, total, diff)
		}
	}
	if got, total := ids("model", 1, 10); len(got) != 1 || total != 1 {
		t.Errorf("paged ListTagged(model) = %v, total %d; want one of one", got, total)
	}

	// Update: nil keeps, a list replaces, an empty list clears.
	u, err := m.Update(ctx, a.ID, In{Data: json.RawMessage(`5`)})
	if err != nil || !slices.Equal(u.Tags, Tags{"model", "run-1"}) {
		t.Fatalf("Update without tags = %v, %v; want tags kept", u, err)
	}
	if _, err := m.Update(ctx, a.ID, In{Tags: tags("final")}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Tags{"final"}, mustGet(t, m, a.ID).Tags); diff != "" {
		t.Errorf("replaced tags (-want +got):\n%s", diff)
	}
	if _, err := m.Update(ctx, a.ID, In{Tags: tags()}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Tags{}, mustGet(t, m, a.ID).Tags); diff != "" {
		t.Errorf("cleared tags (-want +got):\n%s", diff)
	}

	// Artifacts written by jobs have no tags.
	id, err := m.Insert(b.db.WithContext(ctx), json.RawMessage(`{"stdout":""}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, m, id).Tags; len(got) != 0 || got == nil {
		t.Errorf("inserted artifact tags = %#v, want []", got)
	}
}

// A database created before artifacts had tags gains the column on
// migration; its rows read as untagged.
func TestMigrateAddsTags(t *testing.T) {
	t.Parallel()
	db := dbtest.Open(t)
	ctx := t.Context()
	if err := db.Exec(`CREATE TABLE artifacts (id text PRIMARY KEY, parent_id text REFERENCES artifacts(id) ON DELETE SET NULL,
		data blob NOT NULL, level integer NOT NULL, created_at datetime, updated_at datetime)`).Error; err != nil {
		t.Fatal(err)
	}
	const id = "01JCSEED0000000000000TASK1"
	if err := db.Exec(`INSERT INTO artifacts (id, data, level, created_at, updated_at) VALUES (?, ?, 0, ?, ?)`,
		id, []byte(`{"old":true}`), time.Now().UTC(), time.Now().UTC()).Error; err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	m := NewManager(db, nil)
	if got := mustGet(t, m, id).Out().Tags; got == nil || len(got) != 0 {
		t.Errorf("old row tags = %#v, want []", got)
	}
	if _, err := m.Update(ctx, id, In{Tags: &[]string{"kept"}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Tags{"kept"}, mustGet(t, m, id).Tags); diff != "" {
		t.Errorf("tags after update (-want +got):\n%s", diff)
	}
}
