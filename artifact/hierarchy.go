package artifact

import (
	"maps"
	"strconv"
)

// Hierarchy names the levels of an artifact tree, e.g. "ml_experiment"
// with {0: "experiment", 1: "stage", 2: "artifact"}. A nil *Hierarchy means
// none: tree nodes then carry null labels. A Hierarchy must not be changed
// once given to [NewManager]; its methods are safe for concurrent use.
type Hierarchy struct {
	Name        string
	LevelLabels map[int]string
}

// LabelFor returns the label of level, or "level_<n>" when the hierarchy
// (possibly nil) has none for it.
func (h *Hierarchy) LabelFor(level int) string {
	if h != nil {
		if l, ok := h.LevelLabels[level]; ok {
			return l
		}
	}
	return "level_" + strconv.Itoa(level)
}

// Describe returns the metadata form of level:
// {"hierarchy": name, "level_depth": level, "level_label": label}.
// A nil hierarchy gives an empty name.
func (h *Hierarchy) Describe(level int) map[string]any {
	name := ""
	if h != nil {
		name = h.Name
	}
	return map[string]any{"hierarchy": name, "level_depth": level, "level_label": h.LabelFor(level)}
}

// clone copies h so a caller changing its map afterwards cannot race with
// readers.
func (h *Hierarchy) clone() *Hierarchy {
	if h == nil {
		return nil
	}
	return &Hierarchy{Name: h.Name, LevelLabels: maps.Clone(h.LevelLabels)}
}
