package registry

import (
	"bytes"
	"encoding"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// encoding/json skips a JSON null whose target cannot be nil: {"a": null}
// into an int leaves the int as it was, with no error. A task function
// would then run with a zero it was never given. nullError finds such
// nulls so binding can refuse them the way it refuses a value of the wrong
// type.

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// nullable reports whether a JSON null has a meaning for type t: nil for
// pointers, slices, maps and interfaces.
func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return false
}

// decodesItself reports whether t (or *t) has its own JSON or text
// decoding; such a type decides what null means (time.Time accepts it,
// the decoder itself rejects null for a text unmarshaler).
func decodesItself(t reflect.Type) bool {
	pt := reflect.PointerTo(t)
	return t.Implements(jsonUnmarshaler) || pt.Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler)
}

// nullError returns the first null in raw that lands in a Go value of type
// t (or below it) that cannot be nil, as the *json.UnmarshalTypeError the
// decoder gives for a value of the wrong type ("json: cannot unmarshal
// null into Go struct field P.a of type int"), so both read alike. st and
// path are the enclosing struct's name and the dotted JSON path of raw, as
// encoding/json reports them. Values the decoder would reject for another
// reason are left to the decoder; raw is assumed to have decoded already.
// Objects are checked in field order, arrays in index order and maps in
// key order, so the answer is deterministic.
func nullError(raw json.RawMessage, t reflect.Type, st, path string) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || decodesItself(t) {
		return nil
	}
	if bytes.Equal(raw, []byte("null")) {
		if nullable(t) {
			return nil
		}
		return &json.UnmarshalTypeError{Value: "null", Type: t, Struct: st, Field: path}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullError(raw, t.Elem(), st, path)
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return nil // a []byte as base64 text, or not an array at all
		}
		for _, item := range items {
			if err := nullError(item, t.Elem(), st, path); err != nil {
				return err
			}
		}
	case reflect.Map:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			if err := nullError(obj[k], t.Elem(), st, path); err != nil {
				return err
			}
		}
	case reflect.Struct:
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil {
			return nil
		}
		keys := slices.Sorted(maps.Keys(obj))
		for _, f := range jsonFields(t) {
			k, ok := matchKey(keys, f.name)
			if !ok {
				continue
			}
			sub := f.via + f.name // the decoder names a promoted field by its Go path
			if path != "" {
				sub = path + "." + sub
			}
			if err := nullError(obj[k], f.typ, t.Name(), sub); err != nil {
				return err
			}
		}
	}
	return nil
}

// matchKey finds the object key encoding/json would decode into the field
// named name: an exact match, else the first key equal under case folding.
func matchKey(keys []string, name string) (string, bool) {
	if slices.Contains(keys, name) {
		return name, true
	}
	for _, k := range keys {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

var fieldCache sync.Map // reflect.Type → []paramField

// jsonFields lists the fields encoding/json decodes into struct type t. A
// name two fields share ambiguously is dropped, as the decoder drops it.
func jsonFields(t reflect.Type) []paramField {
	if v, ok := fieldCache.Load(t); ok {
		return v.([]paramField)
	}
	var all []candidate
	_ = walkStruct(t, 0, "", false, map[reflect.Type]bool{}, &all) // fails only on defaults, not checked here
	byName := map[string][]candidate{}
	for _, c := range all {
		byName[c.name] = append(byName[c.name], c)
	}
	var out []paramField
	for _, c := range all {
		if winner, err := dominant(byName[c.name]); err == nil && winner.path == c.path {
			out = append(out, c.paramField)
		}
	}
	v, _ := fieldCache.LoadOrStore(t, out)
	return v.([]paramField)
}
