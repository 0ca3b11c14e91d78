package artifact

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHierarchyLabelFor(t *testing.T) {
	ml := &Hierarchy{Name: "ml_experiment", LevelLabels: map[int]string{0: "experiment", 1: "stage", 2: "artifact"}}
	tests := []struct {
		name  string
		h     *Hierarchy
		level int
		want  string
	}{
		{"labelled root", ml, 0, "experiment"},
		{"labelled level", ml, 2, "artifact"},
		{"unlabelled level", ml, 3, "level_3"},
		{"no labels", &Hierarchy{Name: "ml_flow"}, 2, "level_2"},
		{"nil hierarchy", nil, 1, "level_1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.h.LabelFor(tc.level); got != tc.want {
				t.Errorf("LabelFor(%d) = %q, want %q", tc.level, got, tc.want)
			}
		})
	}
}

func TestHierarchyDescribe(t *testing.T) {
	h := &Hierarchy{Name: "ml_flow", LevelLabels: map[int]string{0: "train"}}
	tests := []struct {
		name  string
		level int
		want  map[string]any
	}{
		{"labelled", 0, map[string]any{"hierarchy": "ml_flow", "level_depth": 0, "level_label": "train"}},
		{"fallback", 4, map[string]any{"hierarchy": "ml_flow", "level_depth": 4, "level_label": "level_4"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, h.Describe(tc.level)); diff != "" {
				t.Errorf("Describe(%d) mismatch (-want +got):\n%s", tc.level, diff)
			}
		})
	}
}

func TestNewManagerCopiesHierarchy(t *testing.T) {
	h := &Hierarchy{Name: "a", LevelLabels: map[int]string{0: "x"}}
	m := NewManager(nil, h)
	h.LevelLabels[0] = "changed"
	if got := m.Hierarchy().LabelFor(0); got != "x" {
		t.Errorf("Hierarchy().LabelFor(0) = %q after caller changed its map, want %q", got, "x")
	}
	if NewManager(nil, nil).Hierarchy() != nil {
		t.Error("Hierarchy() of a manager without hierarchy is not nil")
	}
}
