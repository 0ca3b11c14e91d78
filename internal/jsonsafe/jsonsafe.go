// Package jsonsafe encodes arbitrary Go values as JSON without ever failing.
//
// A value that encoding/json rejects (a channel, a func, a cycle, a NaN, a
// MarshalJSON that errors or panics) is replaced by a metadata object that
// names its type and shows its Go syntax, as chapkit does for artifact data
// and function results that cannot be serialised:
//
//	{"_type":"chan int","_module":"builtin","_repr":"(chan int)(0xc000...)",
//	 "_serialization_error":"Value is not JSON-serializable. Access the original object from storage if needed."}
package jsonsafe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"unicode/utf8"
)

// The texts of the _serialization_error member.
const (
	// ShortText marks a replaced value inside a map, or a replaced function result.
	ShortText = "Value is not JSON-serializable."
	// LongText marks a replaced top-level value.
	LongText = "Value is not JSON-serializable. Access the original object from storage if needed."
)

// maxRepr is the number of characters of _repr kept before "..." is appended.
const maxRepr = 200

// Metadata is the object that stands in for a value that cannot be encoded.
// Its field order is the key order on the wire.
type Metadata struct {
	Type   string `json:"_type"`
	Module string `json:"_module"`
	Repr   string `json:"_repr"`
	Error  string `json:"_serialization_error"`
}

// Marshal returns the JSON encoding of v. It never fails and never panics:
// when v cannot be encoded and is a map with string keys, each top-level
// value that cannot be encoded is replaced by a [Metadata] object with
// [ShortText] and the other entries are kept; any other value that cannot
// be encoded is replaced as a whole by a [Metadata] object with [LongText].
// HTML characters are not escaped. Safe for concurrent use.
func Marshal(v any) json.RawMessage { return marshal(v, LongText) }

// MarshalShort is [Marshal] with [ShortText] for a whole-value replacement;
// it is used for the results of task functions.
func MarshalShort(v any) json.RawMessage { return marshal(v, ShortText) }

func marshal(v any, wholeText string) json.RawMessage {
	if b, err := encode(v); err == nil {
		return b
	}
	if b, ok := marshalMap(v); ok {
		return b
	}
	return metadata(v, wholeText)
}

// marshalMap encodes a map with string keys entry by entry, replacing the
// values that cannot be encoded. ok is false when v is not such a map.
func marshalMap(v any) (json.RawMessage, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
		return nil, false
	}
	out := make(map[string]json.RawMessage, rv.Len())
	iter := rv.MapRange()
	for iter.Next() {
		var val any
		if e := iter.Value(); e.CanInterface() {
			val = e.Interface()
		}
		b, err := encode(val)
		if err != nil {
			b = metadata(val, ShortText)
		}
		// encoding/json names a string-kind key by its string value,
		// even when the key type has a MarshalText method.
		out[iter.Key().String()] = b
	}
	b, err := encode(out)
	if err != nil {
		return nil, false
	}
	return b, true
}

// encode is json.Marshal without HTML escaping, with panics from
// MarshalJSON methods turned into errors.
func encode(v any) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			b, err = nil, fmt.Errorf("json: panic while encoding: %v", r)
		}
	}()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// metadata builds the replacement object for v.
func metadata(v any, text string) json.RawMessage {
	m := Describe(v, text)
	b, err := encode(m)
	if err != nil {
		// Unreachable: Metadata holds only strings, and invalid UTF-8 is
		// encoded as U+FFFD rather than rejected.
		return json.RawMessage(`null`)
	}
	return b
}

// Describe returns the [Metadata] of v with the given error text. _type is
// the Go type (chan int, main.Model, *main.Model), _module the package path
// of the named type behind any pointers or "builtin", and _repr the %#v form
// of v cut to 200 characters plus "...". Safe for concurrent use.
func Describe(v any, text string) Metadata {
	m := Metadata{Type: "<nil>", Module: "builtin", Repr: truncate(repr(v)), Error: text}
	if t := reflect.TypeOf(v); t != nil {
		m.Type = t.String()
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.PkgPath() != "" {
			m.Module = t.PkgPath()
		}
	}
	return m
}

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxRepr {
		return s
	}
	n := 0
	for i := range s {
		if n == maxRepr {
			return s[:i] + "..."
		}
		n++
	}
	return s
}
