package task

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strings"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// In is a validated task input (TaskIn) with the schema defaults applied:
// TaskType "shell" and Enabled true when the client left them out.
type In struct {
	ID             string
	Command        string
	TaskType       string
	Parameters     json.RawMessage // nil when absent or null
	Enabled        bool
	TimeoutSeconds *int
	// Options holds the schedule and retry fields given (nil: absent or
	// null).
	Options Options
}

// DecodeIn validates a decoded JSON body (as produced by json.Decoder with
// UseNumber) against TaskIn. A failure is a *problem.Error of kind
// KindRequestInvalid listing every violation in the FastAPI layout.
func DecodeIn(body any) (In, error) {
	const op = "task.DecodeIn"
	obj, ok := body.(map[string]any)
	if !ok {
		msg := "Input should be a valid dictionary or object to extract fields from"
		return In{}, problem.Invalid(op, problem.Violation{Type: "model_attributes_type", Loc: []any{"body"}, Msg: msg, Input: body})
	}
	in := In{TaskType: TypeShell, Enabled: true}
	var items []problem.Violation
	add := func(field, typ, msg string, input any, ctx map[string]any) {
		items = append(items, problem.Violation{Type: typ, Loc: []any{"body", field}, Msg: msg, Input: input, Ctx: ctx})
	}
	if v, present := obj["id"]; present && v != nil {
		if s, ok := v.(string); ok && wire.ValidID(s) {
			in.ID = s
		} else {
			add("id", "ulid_format", "Unrecognized format", v, nil)
		}
	}
	switch v, present := obj["command"]; {
	case !present:
		add("command", "missing", "Field required", obj, nil)
	default:
		if s, ok := v.(string); ok {
			in.Command = s
		} else {
			add("command", "string_type", "Input should be a valid string", v, nil)
		}
	}
	if v, present := obj["task_type"]; present {
		s, _ := v.(string)
		switch s {
		case TypeShell, TypePython:
			in.TaskType = s
		case TypeFunction:
			in.TaskType = TypePython
		default:
			expected := "'shell' or 'python'"
			add("task_type", "literal_error", "Input should be "+expected, v, map[string]any{"expected": expected})
		}
	}
	if v, present := obj["parameters"]; present && v != nil {
		if _, ok := v.(map[string]any); ok {
			raw, err := json.Marshal(v)
			if err != nil {
				add("parameters", "dict_type", "Input should be a valid dictionary", v, nil)
			} else {
				in.Parameters = raw
			}
		} else {
			add("parameters", "dict_type", "Input should be a valid dictionary", v, nil)
		}
	}
	if v, present := obj["enabled"]; present {
		if b, ok := LaxBool(v); ok {
			in.Enabled = b
		} else {
			add("enabled", "bool_type", "Input should be a valid boolean", v, nil)
		}
	}
	if v, present := obj["timeout_seconds"]; present && v != nil {
		// The bounds are checked on the exact integer, so a value past the
		// int64 range is "too large" rather than "not an integer".
		n, _ := v.(json.Number)
		i, isInt := new(big.Int).SetString(n.String(), 10)
		switch {
		case !isInt:
			add("timeout_seconds", "int_type", "Input should be a valid integer", v, nil)
		case i.Sign() <= 0:
			add("timeout_seconds", "greater_than", "Input should be greater than 0", v, map[string]any{"gt": 0})
		case i.Cmp(big.NewInt(MaxTimeoutSeconds)) > 0:
			add("timeout_seconds", "less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", MaxTimeoutSeconds),
				v, map[string]any{"le": MaxTimeoutSeconds})
		default:
			secs := int(i.Int64())
			in.TimeoutSeconds = &secs
		}
	}
	in.Options = decodeOptions(obj, add)
	if len(items) > 0 {
		return In{}, problem.Invalid(op, items...)
	}
	return in, nil
}

// LaxBool accepts what Pydantic's lax mode accepts as a boolean: JSON
// booleans, the numbers 0 and 1, and the strings true/false, yes/no, on/off,
// 1/0 in any case.
func LaxBool(v any) (bool, bool) {
	switch x := v.(type) {
	case bool:
		return x, true
	case json.Number:
		switch x.String() {
		case "0":
			return false, true
		case "1":
			return true, true
		}
	case float64:
		switch x {
		case 0:
			return false, true
		case 1:
			return true, true
		}
	case string:
		return ParseBool(x)
	}
	return false, false
}

// ParseBool parses the lax boolean strings (query parameters, form values).
func ParseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "yes", "on", "1", "t", "y":
		return true, true
	case "false", "no", "off", "0", "f", "n":
		return false, true
	}
	return false, false
}
