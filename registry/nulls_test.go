package registry

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type innerParams struct {
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Deep  struct {
		Flag bool
	} `json:"deep"`
}

// nullParams has one field of each shape a null can land in.
type nullParams struct {
	N       int                `json:"n,omitempty"`
	S       string             `json:"s" default:"\"x\""`
	Ptr     *int               `json:"ptr"`
	List    []int              `json:"list,omitempty"`
	PtrList []*int             `json:"ptr_list,omitempty"`
	Grid    [2]int             `json:"grid,omitempty"`
	ByName  map[string]float64 `json:"by_name,omitempty"`
	Inner   innerParams        `json:"inner,omitempty"`
	PtrIn   *innerParams       `json:"ptr_in,omitempty"`
	Any     any                `json:"any,omitempty"`
	When    time.Time          `json:"when,omitempty"`
	Raw     json.RawMessage    `json:"raw,omitempty"`
}

// TestCallRefusesNull checks that a null whose Go type cannot be nil is a
// TypeError naming the parameter, at any depth, in the decoder's words for
// a value of the wrong type; and that nulls with a meaning still bind.
func TestCallRefusesNull(t *testing.T) {
	r := New()
	echoTask[sumParams](r, "sum")
	echoTask[nullParams](r, "nulls")
	echoTask[embeddedParams](r, "embedded")
	typeErr := func(msg string) *CallError { return &CallError{Type: "TypeError", Message: msg} }

	tests := []struct {
		name    string
		fn      string
		params  string
		want    any
		wantErr *CallError
	}{
		{"int parameter", "sum", `{"a":null,"b":2}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field sumParams.a of type int")},
		{"first null in field order", "sum", `{"b":null,"a":null}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field sumParams.a of type int")},
		{"optional int", "nulls", `{"n":null}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.n of type int")},
		{"string with a default", "nulls", `{"s":null}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.s of type string")},
		{"slice element", "nulls", `{"list":[1,null]}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.list of type int")},
		{"array element", "nulls", `{"grid":[null,1]}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.grid of type int")},
		{"map value", "nulls", `{"by_name":{"k":null}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.by_name of type float64")},
		{"struct value", "nulls", `{"inner":null}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field nullParams.inner of type registry.innerParams")},
		{"nested field", "nulls", `{"inner":{"count":null}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field innerParams.inner.count of type int")},
		{"nested field, key in other case", "nulls", `{"inner":{"COUNT":null}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field innerParams.inner.count of type int")},
		{"nested slice element", "nulls", `{"inner":{"tags":["a",null]}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field innerParams.inner.tags of type string")},
		{"field of an anonymous struct", "nulls", `{"inner":{"deep":{"Flag":null}}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field .inner.deep.Flag of type bool")},
		{"through a pointer", "nulls", `{"ptr_in":{"count":null}}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field innerParams.ptr_in.count of type int")},
		{"promoted field of an embedded struct", "embedded", `{"name":"n","Region":null}`, nil,
			typeErr("json: cannot unmarshal null into Go struct field embeddedParams.Common.Region of type string")},
		{"nulls with a meaning", "nulls",
			`{"ptr":null,"list":null,"ptr_list":[null],"by_name":null,"ptr_in":null,"any":null,"when":null,"raw":null,"inner":{"tags":null}}`,
			nullParams{S: "x", PtrList: []*int{nil}, Raw: json.RawMessage("null")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := r.Lookup(tc.fn)
			if err != nil {
				t.Fatal(err)
			}
			got, cerr := f.Call(t.Context(), json.RawMessage(tc.params), nil)
			if diff := cmp.Diff(tc.wantErr, cerr, ignoreTraceback); diff != "" {
				t.Errorf("CallError mismatch (-want +got):\n%s", diff)
			}
			if cerr != nil && cerr.Traceback == "" {
				t.Error("CallError has no traceback")
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
