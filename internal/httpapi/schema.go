package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// schemaGen turns Go types into JSON Schema (draft 2020-12, the dialect of
// OpenAPI 3.1). Named structs become components referenced by $ref, so a
// recursive type such as an artifact tree is described once.
type schemaGen struct {
	defs map[string]any
	// names gives chosen component names to types; others are named
	// after their package and type.
	names map[reflect.Type]string
	// fixed are hand-written schemas for types whose JSON comes from a
	// MarshalJSON method reflection cannot see through.
	fixed map[reflect.Type]any
	// nullable lists struct fields (type → JSON names) that may be null
	// although their Go type is not a pointer.
	nullable map[reflect.Type]map[string]bool
}

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[time.Time]()
)

func nullableSchema(s any) map[string]any {
	return map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
}

// schema returns the schema of t, registering components as needed.
func (g *schemaGen) schema(t reflect.Type) any {
	if s, ok := g.fixed[t]; ok {
		return s
	}
	switch t {
	case rawMessageType:
		return map[string]any{} // any JSON value
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return nullableSchema(g.schema(t.Elem()))
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.schema(t.Elem())}
	case reflect.Struct:
		return g.structRef(t)
	default:
		return map[string]any{}
	}
}

func (g *schemaGen) name(t reflect.Type) string {
	if n, ok := g.names[t]; ok {
		return n
	}
	pkg := t.PkgPath()
	if i := strings.LastIndexByte(pkg, '/'); i >= 0 {
		pkg = pkg[i+1:]
	}
	n := t.Name()
	if i := strings.IndexByte(n, '['); i >= 0 { // generic instance
		n = n[:i]
	}
	if pkg == "chapkit" || pkg == "httpapi" {
		pkg = ""
	}
	return upperFirst(pkg) + upperFirst(n)
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func (g *schemaGen) structRef(t reflect.Type) any {
	if t.Name() == "" {
		return g.structSchema(t)
	}
	name := g.name(t)
	ref := map[string]any{"$ref": "#/components/schemas/" + name}
	if _, done := g.defs[name]; done {
		return ref
	}
	g.defs[name] = nil // placeholder: a recursive field refers back here
	g.defs[name] = g.structSchema(t)
	return ref
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	var walk func(t reflect.Type)
	walk = func(st reflect.Type) {
		for i := range st.NumField() {
			f := st.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
				walk(f.Type)
				continue
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			s := g.schema(f.Type)
			if strings.HasSuffix(name, "_at") {
				s = withDateTime(s)
			}
			if g.nullable[t][name] {
				s = nullableSchema(s)
			}
			props[name] = s
			if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
				required = append(required, name)
			}
		}
	}
	walk(t)
	s := map[string]any{"type": "object", "properties": props}
	if name := t.Name(); name != "" {
		s["title"] = g.name(t)
	}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

// withDateTime adds format date-time to a string schema, or to the string
// branch of a nullable one: by the naming rule of the wire, every *_at
// member is an RFC 3339 timestamp, whatever Go type carries it.
func withDateTime(s any) any {
	m, ok := s.(map[string]any)
	if !ok {
		return s
	}
	if m["type"] == "string" {
		out := map[string]any{"format": "date-time"}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	if alts, ok := m["anyOf"].([]any); ok {
		out := make([]any, len(alts))
		for i, a := range alts {
			out[i] = withDateTime(a)
		}
		return map[string]any{"anyOf": out}
	}
	return s
}
