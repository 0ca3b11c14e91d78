package registry_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/chapkit-go/chapkit/inject"
	"github.com/chapkit-go/chapkit/registry"
)

// SumParams are the parameters of the calculate_sum task.
type SumParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

// Greeting is a value the application provides for injection; a named type
// keeps it from colliding with other strings.
type Greeting string

// GreetParams are the parameters of the greet task.
type GreetParams struct {
	Name  string `json:"name"`
	Times int    `json:"times" default:"1"`
}

// GreetDeps are injected by type.
type GreetDeps struct {
	Greeting Greeting
}

func Example() {
	reg := registry.New()
	registry.MustRegister(reg, "calculate_sum", func(ctx context.Context, p SumParams) (map[string]any, error) {
		return map[string]any{"result": p.A + p.B, "operation": "sum"}, nil
	})
	registry.MustRegisterWith(reg, "greet", func(ctx context.Context, p GreetParams, d GreetDeps) (string, error) {
		out := ""
		for range p.Times {
			out += fmt.Sprintf("%s, %s! ", d.Greeting, p.Name)
		}
		return out, nil
	})

	c := inject.New()
	if err := inject.Provide(c, Greeting("Hello")); err != nil {
		fmt.Println(err)
		return
	}
	if err := reg.Check(c); err != nil {
		fmt.Println(err)
		return
	}
	c.Freeze()
	reg.Freeze()

	calls := []struct {
		name   string
		params string
	}{
		{"calculate_sum", `{"a": 15, "b": 27}`},
		{"calculate_sum", `{"a": 15}`},
		{"greet", `{"name": "Ada", "times": 2}`},
		{"greet", `{"name": "Bob"}`},
	}
	for _, call := range calls {
		f, err := reg.Lookup(call.name)
		if err != nil {
			fmt.Println(err)
			continue
		}
		result, callErr := f.Call(context.Background(), json.RawMessage(call.params), c)
		if callErr != nil {
			fmt.Printf("%s: %s\n", callErr.Type, callErr.Message)
			continue
		}
		b, _ := json.Marshal(result)
		fmt.Println(string(b))
	}
	_, err := reg.Lookup("missing")
	fmt.Println(err)
	fmt.Println(reg.Names())

	// Output:
	// {"operation":"sum","result":42}
	// ValueError: Missing required parameter 'b' for task function. Parameter is not injectable and not provided in task.parameters.
	// "Hello, Ada! Hello, Ada! "
	// "Hello, Bob! "
	// Task 'missing' not found in registry
	// [calculate_sum greet]
}
