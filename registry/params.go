package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
)

// paramSpec describes how a task's parameters object binds to P.
type paramSpec struct {
	typ    reflect.Type // P
	whole  bool         // P is a map[string]any and receives the whole object
	fields []paramField // struct parameters in field order
	known  map[string]bool
}

// paramField is one parameter of a struct P.
type paramField struct {
	name     string          // JSON name
	typ      reflect.Type    // the Go type the value decodes into
	via      string          // Go names of the embedded structs it is promoted from, "Common."
	required bool            // not a pointer, no omitempty, no default
	def      json.RawMessage // default literal, nil when none
}

// newParamSpec validates P and describes its parameters.
func newParamSpec(t reflect.Type) (*paramSpec, error) {
	switch {
	case t.Kind() == reflect.Map && t.Key() == reflect.TypeFor[string]() && t.Elem() == reflect.TypeFor[any]():
		return &paramSpec{typ: t, whole: true}, nil
	case t.Kind() == reflect.Struct:
		fields, err := structParams(t, true)
		if err != nil {
			return nil, err
		}
		known := make(map[string]bool, len(fields))
		for _, f := range fields {
			known[f.name] = true
		}
		return &paramSpec{typ: t, fields: fields, known: known}, nil
	default:
		return nil, fmt.Errorf("parameters type %s must be map[string]any or a struct (struct{} for none)", t)
	}
}

// candidate is a field found while walking a struct and its embedded
// structs, before names hidden by shallower fields are dropped.
type candidate struct {
	paramField
	depth  int
	tagged bool
	path   string // Go field path, for error messages
}

// structParams lists the JSON parameters of struct type t the way
// encoding/json decodes them: exported fields by json tag name or Go name,
// `json:"-"` skipped, untagged anonymous structs flattened, a shallower
// field hiding deeper ones of the same name. Where encoding/json would
// silently ignore two fields of the same name at the same depth, this
// returns an error instead. checkDefaults also verifies `default` tags,
// which only the parameters struct itself may use.
func structParams(t reflect.Type, checkDefaults bool) ([]paramField, error) {
	var all []candidate
	if err := walkStruct(t, 0, "", checkDefaults, map[reflect.Type]bool{}, &all); err != nil {
		return nil, err
	}
	byName := map[string][]candidate{}
	for _, c := range all {
		byName[c.name] = append(byName[c.name], c)
	}
	var out []paramField
	for _, c := range all {
		winner, err := dominant(byName[c.name])
		if err != nil {
			return nil, fmt.Errorf("parameters type %s: %w", t, err)
		}
		if winner.path == c.path {
			out = append(out, c.paramField)
		}
	}
	return out, nil
}

// dominant picks the field a JSON name binds to: the shallowest, then the
// tagged one among equals.
func dominant(cs []candidate) (candidate, error) {
	minDepth := slices.MinFunc(cs, func(a, b candidate) int { return a.depth - b.depth }).depth
	var top, tagged []candidate
	for _, c := range cs {
		if c.depth != minDepth {
			continue
		}
		top = append(top, c)
		if c.tagged {
			tagged = append(tagged, c)
		}
	}
	switch {
	case len(top) == 1:
		return top[0], nil
	case len(tagged) == 1:
		return tagged[0], nil
	default:
		paths := make([]string, len(top))
		for i, c := range top {
			paths[i] = c.path
		}
		return candidate{}, fmt.Errorf("parameter %q is ambiguous between fields %s", cs[0].name, strings.Join(paths, " and "))
	}
}

func walkStruct(t reflect.Type, depth int, prefix string, checkDefaults bool, visiting map[reflect.Type]bool, out *[]candidate) error {
	if visiting[t] {
		return nil // a recursive embedding adds no new fields
	}
	visiting[t] = true
	defer delete(visiting, t)

	for i := range t.NumField() {
		sf := t.Field(i)
		ft := sf.Type
		if sf.Anonymous {
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			// encoding/json promotes the exported fields of an unexported
			// embedded struct, but nothing else that is unexported.
			if !sf.IsExported() && ft.Kind() != reflect.Struct {
				continue
			}
		} else if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		path := prefix + sf.Name
		if name == "" && sf.Anonymous && ft.Kind() == reflect.Struct {
			if err := walkStruct(ft, depth+1, path+".", checkDefaults, visiting, out); err != nil {
				return err
			}
			continue
		}
		if !sf.IsExported() {
			continue // an unexported embedded struct with a json name is ignored
		}
		c := candidate{depth: depth, tagged: name != "", path: path}
		c.name, c.typ, c.via = name, sf.Type, prefix
		if c.name == "" {
			c.name = sf.Name
		}
		optional := sf.Type.Kind() == reflect.Pointer || hasOption(opts, "omitempty")
		if lit, ok := sf.Tag.Lookup("default"); ok && checkDefaults {
			def, err := checkDefault(lit, sf.Type)
			if err != nil {
				return fmt.Errorf("field %s: default %s: %w", path, lit, err)
			}
			c.def = def
			optional = true
		}
		c.required = !optional
		*out = append(*out, c)
	}
	return nil
}

func hasOption(opts, want string) bool {
	for opt := range strings.SplitSeq(opts, ",") {
		if opt == want {
			return true
		}
	}
	return false
}

// checkDefault verifies that lit is a JSON literal decoding into type t.
func checkDefault(lit string, t reflect.Type) (json.RawMessage, error) {
	if !json.Valid([]byte(lit)) {
		return nil, fmt.Errorf("not a JSON literal (strings need quotes: default:\"\\\"text\\\"\")")
	}
	if err := json.Unmarshal([]byte(lit), reflect.New(t).Interface()); err != nil {
		return nil, err
	}
	if err := nullError(json.RawMessage(lit), t, "", ""); err != nil {
		return nil, err // the default would fail every call that relies on it
	}
	return json.RawMessage(lit), nil
}

// bind decodes raw into dst, a pointer to P, following the order documented
// on Func.Call.
func (s *paramSpec) bind(raw json.RawMessage, dst any) *CallError {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return bindError("TypeError", "task parameters must be a JSON object")
	}
	if s.whole {
		if err := json.Unmarshal(raw, dst); err != nil {
			return bindError("TypeError", err.Error())
		}
		return nil
	}

	for _, f := range s.fields {
		if _, ok := obj[f.name]; f.required && !ok {
			return bindError("ValueError", fmt.Sprintf(
				"Missing required parameter '%s' for task function. Parameter is not injectable and not provided in task.parameters.",
				f.name))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		if !s.known[key] {
			return bindError("TypeError", fmt.Sprintf("unexpected parameter '%s'", key))
		}
	}
	defaulted := false
	for _, f := range s.fields {
		if _, ok := obj[f.name]; !ok && f.def != nil {
			obj[f.name] = f.def
			defaulted = true
		}
	}
	if defaulted {
		b, err := json.Marshal(obj)
		if err != nil {
			return bindError("TypeError", err.Error())
		}
		raw = b
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return bindError("TypeError", err.Error())
	}
	// encoding/json leaves a value alone when it meets null, so {"a": null}
	// for an int parameter would silently run the function with a = 0.
	if err := nullError(raw, s.typ, "", ""); err != nil {
		return bindError("TypeError", err.Error())
	}
	return nil
}

func bindError(typ, msg string) *CallError {
	return &CallError{Type: typ, Message: msg, Traceback: string(debug.Stack())}
}
