package task

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/problem"
)

func intPtr(n int) *int { return &n }

func TestDecodeIn(t *testing.T) {
	const validID = "01K72P5N5KCRM6MD3BRE4P0999"
	literalCtx := map[string]any{"expected": "'shell' or 'python'"}
	literalMsg := "Input should be 'shell' or 'python'"
	tests := []struct {
		name  string
		body  string
		want  In
		items []problem.Violation
	}{
		{
			name: "defaults applied",
			body: `{"command":"echo hi"}`,
			want: In{Command: "echo hi", TaskType: TypeShell, Enabled: true},
		},
		{
			name: "every field",
			body: `{"id":"` + validID + `","command":"sum","task_type":"python","parameters":{"a":1,"b":[true]},"enabled":false,"timeout_seconds":5}`,
			want: In{ID: validID, Command: "sum", TaskType: TypePython, Parameters: json.RawMessage(`{"a":1,"b":[true]}`), TimeoutSeconds: intPtr(5)},
		},
		{
			name: "timeout at the maximum",
			body: `{"command":"c","timeout_seconds":2592000}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true, TimeoutSeconds: intPtr(2592000)},
		},
		{
			name: "timeout of one second",
			body: `{"command":"c","timeout_seconds":1}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true, TimeoutSeconds: intPtr(1)},
		},
		{
			name: "empty command allowed",
			body: `{"command":""}`,
			want: In{TaskType: TypeShell, Enabled: true},
		},
		{
			name: "function alias stored as python",
			body: `{"command":"f","task_type":"function"}`,
			want: In{Command: "f", TaskType: TypePython, Enabled: true},
		},
		{
			name: "nulls for id and parameters and timeout",
			body: `{"id":null,"command":"c","parameters":null,"timeout_seconds":null}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true},
		},
		{
			name: "empty parameters object kept",
			body: `{"command":"c","parameters":{}}`,
			want: In{Command: "c", TaskType: TypeShell, Parameters: json.RawMessage(`{}`), Enabled: true},
		},
		{
			name: "enabled string no",
			body: `{"command":"c","enabled":"no"}`,
			want: In{Command: "c", TaskType: TypeShell},
		},
		{
			name: "enabled string OFF",
			body: `{"command":"c","enabled":"OFF"}`,
			want: In{Command: "c", TaskType: TypeShell},
		},
		{
			name: "enabled number 0",
			body: `{"command":"c","enabled":0}`,
			want: In{Command: "c", TaskType: TypeShell},
		},
		{
			name: "enabled number 1",
			body: `{"command":"c","enabled":1}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true},
		},
		{
			name: "enabled string yes",
			body: `{"command":"c","enabled":"yes"}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true},
		},
		{
			name: "enabled string True",
			body: `{"command":"c","enabled":"True"}`,
			want: In{Command: "c", TaskType: TypeShell, Enabled: true},
		},
		{
			name:  "missing command",
			body:  `{"task_type":"shell"}`,
			items: []problem.Violation{{Type: "missing", Loc: []any{"body", "command"}, Msg: "Field required", Input: map[string]any{"task_type": "shell"}}},
		},
		{
			name:  "empty object",
			body:  `{}`,
			items: []problem.Violation{{Type: "missing", Loc: []any{"body", "command"}, Msg: "Field required", Input: map[string]any{}}},
		},
		{
			name:  "command not a string",
			body:  `{"command":5}`,
			items: []problem.Violation{{Type: "string_type", Loc: []any{"body", "command"}, Msg: "Input should be a valid string", Input: json.Number("5")}},
		},
		{
			name:  "command null",
			body:  `{"command":null}`,
			items: []problem.Violation{{Type: "string_type", Loc: []any{"body", "command"}, Msg: "Input should be a valid string", Input: nil}},
		},
		{
			name:  "array body",
			body:  `[{"command":"c"}]`,
			items: []problem.Violation{{Type: "model_attributes_type", Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Input: []any{map[string]any{"command": "c"}}}},
		},
		{
			name:  "string body",
			body:  `"echo hi"`,
			items: []problem.Violation{{Type: "model_attributes_type", Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Input: "echo hi"}},
		},
		{
			name:  "null body",
			body:  `null`,
			items: []problem.Violation{{Type: "model_attributes_type", Loc: []any{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Input: nil}},
		},
		{
			name:  "bad task_type",
			body:  `{"command":"c","task_type":"bash"}`,
			items: []problem.Violation{{Type: "literal_error", Loc: []any{"body", "task_type"}, Msg: literalMsg, Input: "bash", Ctx: literalCtx}},
		},
		{
			name:  "task_type null",
			body:  `{"command":"c","task_type":null}`,
			items: []problem.Violation{{Type: "literal_error", Loc: []any{"body", "task_type"}, Msg: literalMsg, Input: nil, Ctx: literalCtx}},
		},
		{
			name:  "parameters array",
			body:  `{"command":"c","parameters":[1,2]}`,
			items: []problem.Violation{{Type: "dict_type", Loc: []any{"body", "parameters"}, Msg: "Input should be a valid dictionary", Input: []any{json.Number("1"), json.Number("2")}}},
		},
		{
			name:  "parameters string",
			body:  `{"command":"c","parameters":"a=1"}`,
			items: []problem.Violation{{Type: "dict_type", Loc: []any{"body", "parameters"}, Msg: "Input should be a valid dictionary", Input: "a=1"}},
		},
		{
			name:  "enabled maybe",
			body:  `{"command":"c","enabled":"maybe"}`,
			items: []problem.Violation{{Type: "bool_type", Loc: []any{"body", "enabled"}, Msg: "Input should be a valid boolean", Input: "maybe"}},
		},
		{
			name:  "enabled 2",
			body:  `{"command":"c","enabled":2}`,
			items: []problem.Violation{{Type: "bool_type", Loc: []any{"body", "enabled"}, Msg: "Input should be a valid boolean", Input: json.Number("2")}},
		},
		{
			name:  "enabled null",
			body:  `{"command":"c","enabled":null}`,
			items: []problem.Violation{{Type: "bool_type", Loc: []any{"body", "enabled"}, Msg: "Input should be a valid boolean", Input: nil}},
		},
		{
			name:  "id not a ULID",
			body:  `{"id":"not-a-ulid","command":"c"}`,
			items: []problem.Violation{{Type: "ulid_format", Loc: []any{"body", "id"}, Msg: "Unrecognized format", Input: "not-a-ulid"}},
		},
		{
			name:  "id a number",
			body:  `{"id":7,"command":"c"}`,
			items: []problem.Violation{{Type: "ulid_format", Loc: []any{"body", "id"}, Msg: "Unrecognized format", Input: json.Number("7")}},
		},
		{
			name:  "timeout zero",
			body:  `{"command":"c","timeout_seconds":0}`,
			items: []problem.Violation{{Type: "greater_than", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be greater than 0", Input: json.Number("0"), Ctx: map[string]any{"gt": 0}}},
		},
		{
			name:  "timeout negative",
			body:  `{"command":"c","timeout_seconds":-3}`,
			items: []problem.Violation{{Type: "greater_than", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be greater than 0", Input: json.Number("-3"), Ctx: map[string]any{"gt": 0}}},
		},
		{
			name:  "timeout overflowing a duration",
			body:  `{"command":"sleep 3; echo finished","timeout_seconds":18446744074}`,
			items: []problem.Violation{tooLong("18446744074")},
		},
		{
			name:  "timeout one past the maximum",
			body:  `{"command":"c","timeout_seconds":2592001}`,
			items: []problem.Violation{tooLong("2592001")},
		},
		{
			name:  "timeout past the int64 range",
			body:  `{"command":"c","timeout_seconds":100000000000000000000000}`,
			items: []problem.Violation{tooLong("100000000000000000000000")},
		},
		{
			name:  "timeout negative past the int64 range",
			body:  `{"command":"c","timeout_seconds":-100000000000000000000000}`,
			items: []problem.Violation{{Type: "greater_than", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be greater than 0", Input: json.Number("-100000000000000000000000"), Ctx: map[string]any{"gt": 0}}},
		},
		{
			name:  "timeout exponent",
			body:  `{"command":"c","timeout_seconds":1e3}`,
			items: []problem.Violation{{Type: "int_type", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be a valid integer", Input: json.Number("1e3")}},
		},
		{
			name:  "timeout fraction",
			body:  `{"command":"c","timeout_seconds":1.5}`,
			items: []problem.Violation{{Type: "int_type", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be a valid integer", Input: json.Number("1.5")}},
		},
		{
			name:  "timeout string",
			body:  `{"command":"c","timeout_seconds":"5"}`,
			items: []problem.Violation{{Type: "int_type", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be a valid integer", Input: "5"}},
		},
		{
			name: "several violations in field order",
			body: `{"id":"x","task_type":"perl","parameters":3,"enabled":"sometimes","timeout_seconds":0}`,
			items: []problem.Violation{
				{Type: "ulid_format", Loc: []any{"body", "id"}, Msg: "Unrecognized format", Input: "x"},
				{Type: "missing", Loc: []any{"body", "command"}, Msg: "Field required", Input: map[string]any{
					"id": "x", "task_type": "perl", "parameters": json.Number("3"), "enabled": "sometimes", "timeout_seconds": json.Number("0"),
				}},
				{Type: "literal_error", Loc: []any{"body", "task_type"}, Msg: literalMsg, Input: "perl", Ctx: literalCtx},
				{Type: "dict_type", Loc: []any{"body", "parameters"}, Msg: "Input should be a valid dictionary", Input: json.Number("3")},
				{Type: "bool_type", Loc: []any{"body", "enabled"}, Msg: "Input should be a valid boolean", Input: "sometimes"},
				{Type: "greater_than", Loc: []any{"body", "timeout_seconds"}, Msg: "Input should be greater than 0", Input: json.Number("0"), Ctx: map[string]any{"gt": 0}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeIn(mustDecode(t, tc.body))
			var items []problem.Violation
			if err != nil {
				pe := problemOf(t, err)
				if pe.Kind != problem.KindRequestInvalid {
					t.Errorf("DecodeIn(%s) kind = %v, want KindRequestInvalid", tc.body, pe.Kind)
				}
				items = pe.Items
			}
			if diff := cmp.Diff(tc.items, items); diff != "" {
				t.Errorf("DecodeIn(%s) violations mismatch (-want +got):\n%s", tc.body, diff)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("DecodeIn(%s) mismatch (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

// tooLong is the violation for a timeout_seconds above MaxTimeoutSeconds;
// the limit is spelled out so a change to the constant shows here.
func tooLong(input string) problem.Violation {
	return problem.Violation{Type: "less_than_equal", Loc: []any{"body", "timeout_seconds"},
		Msg: "Input should be less than or equal to 2592000", Input: json.Number(input), Ctx: map[string]any{"le": 2592000}}
}

func TestTaskTimeout(t *testing.T) {
	tests := []struct {
		name    string
		seconds *int
		want    time.Duration
	}{
		{"none", nil, 0},
		{"one second", intPtr(1), time.Second},
		{"the maximum", intPtr(MaxTimeoutSeconds), 30 * 24 * time.Hour},
		{"stored above the maximum", intPtr(18446744074), 30 * 24 * time.Hour},
		{"stored at the int range's end", intPtr(math.MaxInt), 30 * 24 * time.Hour},
		{"stored zero", intPtr(0), 0},
		{"stored negative", intPtr(-5), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			task := Task{TimeoutSeconds: tc.seconds}
			if got := task.Timeout(); got != tc.want {
				t.Errorf("Timeout() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLaxBool(t *testing.T) {
	tests := []struct {
		name   string
		in     any
		want   bool
		wantOK bool
	}{
		{"true", true, true, true},
		{"false", false, false, true},
		{"number 1", json.Number("1"), true, true},
		{"number 0", json.Number("0"), false, true},
		{"float 1", float64(1), true, true},
		{"float 0", float64(0), false, true},
		{"number 2", json.Number("2"), false, false},
		{"float 0.5", 0.5, false, false},
		{"string yes", "yes", true, true},
		{"string On", "On", true, true},
		{"string t", "t", true, true},
		{"string y", "y", true, true},
		{"string 1", "1", true, true},
		{"string FALSE", "FALSE", false, true},
		{"string off", "off", false, true},
		{"string n", "n", false, true},
		{"string 0", "0", false, true},
		{"string empty", "", false, false},
		{"string maybe", "maybe", false, false},
		{"nil", nil, false, false},
		{"object", map[string]any{}, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := LaxBool(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("LaxBool(%#v) = %v, %v, want %v, %v", tc.in, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
