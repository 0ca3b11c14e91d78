package jsonsafe

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// reprBudget bounds the work spent checking a value before fmt prints it,
// and the bytes the fallback printer writes. Past either, only the first
// 200 characters are kept anyway.
const (
	maxWalk     = 10000
	reprBudget  = 4*maxRepr + 64
	maxReprNest = 64
)

// repr is fmt.Sprintf("%#v", v), except for values fmt would print forever.
// fmt has no cycle check for maps and slices (a map that holds itself
// recurses until the stack overflows, which no recover can catch), so a
// value that holds such a cycle, or is too large to check, is printed by a
// bounded imitation of %#v instead.
func repr(v any) string {
	w := walker{path: map[ref]bool{}}
	if w.acyclic(reflect.ValueOf(v), 0) {
		return fmt.Sprintf("%#v", v)
	}
	var p printer
	p.value(reflect.ValueOf(v), 0)
	return p.String()
}

// ref identifies a map or slice backing store on the current path.
type ref struct {
	ptr uintptr
	typ reflect.Type
	n   int
}

type walker struct {
	path  map[ref]bool
	steps int
}

// acyclic reports whether fmt can print v in finite time: it follows v
// the way fmt does (pointers only at depth 0) and fails on a map or slice
// already on the path, or after maxWalk steps.
func (w *walker) acyclic(v reflect.Value, depth int) bool {
	if w.steps++; w.steps > maxWalk {
		return false
	}
	if !v.IsValid() {
		return true
	}
	switch v.Kind() {
	case reflect.Interface:
		return w.acyclic(v.Elem(), depth+1)
	case reflect.Pointer:
		if depth != 0 || v.IsNil() {
			return true
		}
		switch v.Elem().Kind() {
		case reflect.Array, reflect.Slice, reflect.Struct, reflect.Map:
			return w.acyclic(v.Elem(), depth+1)
		}
		return true
	case reflect.Struct:
		for i := range v.NumField() {
			if !w.acyclic(v.Field(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Array:
		for i := range v.Len() {
			if !w.acyclic(v.Index(i), depth+1) {
				return false
			}
		}
		return true
	case reflect.Map, reflect.Slice:
		if v.IsNil() {
			return true
		}
		r := ref{ptr: uintptr(v.UnsafePointer()), typ: v.Type(), n: v.Len()}
		if w.path[r] {
			return false
		}
		w.path[r] = true
		defer delete(w.path, r)
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				if !w.acyclic(v.Index(i), depth+1) {
					return false
				}
			}
			return true
		}
		iter := v.MapRange()
		for iter.Next() {
			if !w.acyclic(iter.Key(), depth+1) || !w.acyclic(iter.Value(), depth+1) {
				return false
			}
		}
		return true
	}
	return true
}

// printer writes an approximation of %#v that stops after reprBudget bytes.
type printer struct{ strings.Builder }

func (p *printer) full() bool { return p.Len() >= reprBudget }

func (p *printer) value(v reflect.Value, depth int) {
	if p.full() {
		return
	}
	if depth > maxReprNest {
		p.WriteString("...")
		return
	}
	if !v.IsValid() {
		if depth == 0 {
			p.WriteString("<nil>")
		} else {
			p.WriteString("interface {}(nil)")
		}
		return
	}
	t := v.Type()
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			fmt.Fprintf(p, "%s(nil)", t)
			return
		}
		p.value(v.Elem(), depth+1)
	case reflect.Pointer:
		if depth == 0 && !v.IsNil() {
			switch v.Elem().Kind() {
			case reflect.Array, reflect.Slice, reflect.Struct, reflect.Map:
				p.WriteByte('&')
				p.value(v.Elem(), depth+1)
				return
			}
		}
		// Not fmt.Fprintf(p, "%#v", v): fmt starts a reflect.Value
		// operand at depth 0 and would follow the pointer again.
		if v.IsNil() {
			fmt.Fprintf(p, "(%s)(nil)", t)
		} else {
			fmt.Fprintf(p, "(%s)(%#x)", t, v.Pointer())
		}
	case reflect.Map:
		if v.IsNil() {
			fmt.Fprintf(p, "%s(nil)", t)
			return
		}
		p.WriteString(t.String())
		p.WriteByte('{')
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = fmt.Sprintf("%#v", k)
		}
		idx := make([]int, len(keys))
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return names[idx[a]] < names[idx[b]] })
		for n, i := range idx {
			if p.full() {
				return
			}
			if n > 0 {
				p.WriteString(", ")
			}
			p.WriteString(names[i])
			p.WriteByte(':')
			p.value(v.MapIndex(keys[i]), depth+1)
		}
		p.WriteByte('}')
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			fmt.Fprintf(p, "%s(nil)", t)
			return
		}
		p.WriteString(t.String())
		p.WriteByte('{')
		for i := range v.Len() {
			if p.full() {
				return
			}
			if i > 0 {
				p.WriteString(", ")
			}
			p.value(v.Index(i), depth+1)
		}
		p.WriteByte('}')
	case reflect.Struct:
		p.WriteString(t.String())
		p.WriteByte('{')
		for i := range v.NumField() {
			if p.full() {
				return
			}
			if i > 0 {
				p.WriteString(", ")
			}
			p.WriteString(t.Field(i).Name)
			p.WriteByte(':')
			p.value(v.Field(i), depth+1)
		}
		p.WriteByte('}')
	default:
		// fmt prints the value a reflect.Value holds, unexported or not.
		fmt.Fprintf(p, "%#v", v)
	}
}
