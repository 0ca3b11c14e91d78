package jsonsafe

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type model struct {
	Coefficients []float64
	Intercept    float64
	fit          func()
}

type node struct {
	Name string
	Next *node
}

type failing struct{}

func (failing) MarshalJSON() ([]byte, error) { return nil, errors.New("boom") }

type panicking struct{}

func (panicking) MarshalJSON() ([]byte, error) { panic("boom") }

func meta(typ, module, repr, text string) map[string]any {
	return map[string]any{"_type": typ, "_module": module, "_repr": repr, "_serialization_error": text}
}

func TestMarshal(t *testing.T) {
	ch := make(chan int)
	m := model{Coefficients: []float64{0.42}, Intercept: 0.12}
	cyc := &node{Name: "a"}
	cyc.Next = cyc
	selfMap := map[string]any{"ok": 1}
	selfMap["self"] = selfMap
	long := strings.Repeat("x", 300)

	tests := []struct {
		name  string
		in    any
		want  any // decoded JSON
		short any // decoded JSON from MarshalShort
	}{
		{
			name:  "plain object passes unchanged",
			in:    map[string]any{"a": 1, "b": []any{"x", true, nil}},
			want:  map[string]any{"a": 1.0, "b": []any{"x", true, nil}},
			short: map[string]any{"a": 1.0, "b": []any{"x", true, nil}},
		},
		{
			name:  "nil",
			in:    nil,
			want:  nil,
			short: nil,
		},
		{
			name:  "html is not escaped",
			in:    "<a&b>",
			want:  "<a&b>",
			short: "<a&b>",
		},
		{
			name:  "channel",
			in:    ch,
			want:  meta("chan int", "builtin", reprOf(ch), LongText),
			short: meta("chan int", "builtin", reprOf(ch), ShortText),
		},
		{
			name:  "struct with a func field is encodable",
			in:    m,
			want:  map[string]any{"Coefficients": []any{0.42}, "Intercept": 0.12},
			short: map[string]any{"Coefficients": []any{0.42}, "Intercept": 0.12},
		},
		{
			name:  "NaN",
			in:    math.NaN(),
			want:  meta("float64", "builtin", "NaN", LongText),
			short: meta("float64", "builtin", "NaN", ShortText),
		},
		{
			name:  "cyclic pointer",
			in:    cyc,
			want:  meta("*jsonsafe.node", "github.com/chapkit-go/chapkit/internal/jsonsafe", reprOf(cyc), LongText),
			short: meta("*jsonsafe.node", "github.com/chapkit-go/chapkit/internal/jsonsafe", reprOf(cyc), ShortText),
		},
		{
			name: "map values replaced one by one",
			in:   map[string]any{"model": ch, "score": 0.9, "f": failing{}},
			want: map[string]any{
				"model": meta("chan int", "builtin", reprOf(ch), ShortText),
				"score": 0.9,
				"f":     meta("jsonsafe.failing", "github.com/chapkit-go/chapkit/internal/jsonsafe", "jsonsafe.failing{}", ShortText),
			},
			short: map[string]any{
				"model": meta("chan int", "builtin", reprOf(ch), ShortText),
				"score": 0.9,
				"f":     meta("jsonsafe.failing", "github.com/chapkit-go/chapkit/internal/jsonsafe", "jsonsafe.failing{}", ShortText),
			},
		},
		{
			name:  "map with non-string keys replaced whole",
			in:    map[int]any{1: ch},
			want:  meta("map[int]interface {}", "builtin", reprOf(map[int]any{1: ch}), LongText),
			short: meta("map[int]interface {}", "builtin", reprOf(map[int]any{1: ch}), ShortText),
		},
		{
			name:  "slice replaced whole",
			in:    []any{1, ch},
			want:  meta("[]interface {}", "builtin", reprOf([]any{1, ch}), LongText),
			short: meta("[]interface {}", "builtin", reprOf([]any{1, ch}), ShortText),
		},
		{
			name:  "panicking MarshalJSON",
			in:    panicking{},
			want:  meta("jsonsafe.panicking", "github.com/chapkit-go/chapkit/internal/jsonsafe", "jsonsafe.panicking{}", LongText),
			short: meta("jsonsafe.panicking", "github.com/chapkit-go/chapkit/internal/jsonsafe", "jsonsafe.panicking{}", ShortText),
		},
		{
			name:  "long repr truncated",
			in:    []any{long, ch},
			want:  meta("[]interface {}", "builtin", `[]interface {}{"`+strings.Repeat("x", 184)+"...", LongText),
			short: meta("[]interface {}", "builtin", `[]interface {}{"`+strings.Repeat("x", 184)+"...", ShortText),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, decode(t, Marshal(tc.in))); diff != "" {
				t.Errorf("Marshal mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.short, decode(t, MarshalShort(tc.in))); diff != "" {
				t.Errorf("MarshalShort mismatch (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("self-referencing map", func(t *testing.T) {
		got := decode(t, Marshal(selfMap)).(map[string]any)
		if got["ok"] != 1.0 {
			t.Errorf("ok = %v, want 1", got["ok"])
		}
		self, _ := got["self"].(map[string]any)
		wantPrefix := `map[string]interface {}{"ok":1, "self":map[string]interface {}{"ok":1, "self":`
		if r, _ := self["_repr"].(string); !strings.HasPrefix(r, wantPrefix) || !strings.HasSuffix(r, "...") {
			t.Errorf("_repr = %q, want prefix %q and suffix ...", r, wantPrefix)
		}
		if self["_serialization_error"] != ShortText {
			t.Errorf("_serialization_error = %v, want %q", self["_serialization_error"], ShortText)
		}
	})
}

func TestMarshalSelfReferencingSlice(t *testing.T) {
	s := []any{1, nil}
	s[1] = s
	got := decode(t, Marshal(s)).(map[string]any)
	r, _ := got["_repr"].(string)
	if want := "[]interface {}{1, []interface {}{1, []interface {}{1, "; !strings.HasPrefix(r, want) || !strings.HasSuffix(r, "...") {
		t.Errorf("_repr = %q, want prefix %q and suffix ...", r, want)
	}
	if got["_serialization_error"] != LongText || got["_type"] != "[]interface {}" {
		t.Errorf("metadata = %v", got)
	}
}

func TestMarshalKeyOrder(t *testing.T) {
	got := string(Marshal(make(chan int)))
	for _, k := range []string{`{"_type"`, `,"_module"`, `,"_repr"`, `,"_serialization_error"`} {
		if !strings.Contains(got, k) {
			t.Fatalf("Marshal(chan) = %s, missing %s", got, k)
		}
	}
	if a, b, c := strings.Index(got, "_module"), strings.Index(got, "_repr"), strings.Index(got, "_serialization_error"); !(a < b && b < c) {
		t.Errorf("Marshal(chan) = %s, keys out of order", got)
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string
	}{
		{"short", "abc", "abc"},
		{"exactly 200", strings.Repeat("a", 200), strings.Repeat("a", 200)},
		{"201", strings.Repeat("a", 201), strings.Repeat("a", 200) + "..."},
		{"runes not bytes", strings.Repeat("é", 201), strings.Repeat("é", 200) + "..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := truncate(tc.in); got != tc.want {
				t.Errorf("truncate(%d runes) = %q, want %q", len(tc.in), got, tc.want)
			}
		})
	}
}

func reprOf(v any) string { return truncate(repr(v)) }

func decode(t *testing.T, b json.RawMessage) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("output %s is not JSON: %v", b, err)
	}
	return v
}
