package registry

import (
	"context"
	"encoding/json"
	"testing"
)

type fuzzParams struct {
	Name   string   `json:"name"`
	Count  int      `json:"count" default:"3"`
	Flag   bool     `json:"flag,omitempty"`
	Ratio  *float64 `json:"ratio"`
	Tags   []string `json:"tags,omitempty"`
	Nested struct {
		Deep int `json:"deep"`
	} `json:"nested,omitempty"`
}

// FuzzBind calls a registered function with arbitrary parameters: binding
// never panics, and either the function runs with what was sent or the
// call fails with one of the documented error types.
func FuzzBind(f *testing.F) {
	for _, s := range []string{
		`{"name":"a"}`, `{"name":"a","count":1.5}`, `{}`, `null`, `[]`, `{"name":1}`,
		`{"name":"a","extra":true}`, `{"name":"a","ratio":null,"nested":{"deep":2}}`,
	} {
		f.Add([]byte(s))
	}
	r := New()
	calls := 0
	if err := Register(r, "fn", func(ctx context.Context, p fuzzParams) (fuzzParams, error) {
		calls++
		return p, nil
	}); err != nil {
		f.Fatal(err)
	}
	fn, err := r.Lookup("fn")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, params []byte) {
		before := calls
		res, callErr := fn.Call(context.Background(), json.RawMessage(params), nil)
		if callErr != nil {
			switch callErr.Type {
			case "TypeError", "ValueError":
			default:
				t.Fatalf("Call(%s) failed with type %q: %s", params, callErr.Type, callErr.Message)
			}
			if calls != before {
				t.Fatalf("Call(%s) ran the function although binding failed", params)
			}
			return
		}
		p := res.(fuzzParams)
		var sent map[string]json.RawMessage
		if json.Unmarshal(params, &sent) == nil {
			if _, ok := sent["count"]; !ok && p.Count != 3 {
				t.Fatalf("Call(%s) without count bound %d, want the default 3", params, p.Count)
			}
		}
	})
}
