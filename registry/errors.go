package registry

import (
	"github.com/chapkit-go/chapkit/problem"
)

// CallError is the failure of [Func.Call], shaped as the "error" member of a
// function task's artifact. It implements error, rendering as
// "<Type>: <Message>" (the form a failed job records), and reports Type
// from ErrorType, so [ErrorType] keeps it when it is wrapped.
type CallError struct {
	// Type names the failure: an error type name such as "ValueError",
	// "TypeError", "InjectionError", "panic", or the [ErrorType] of the
	// error the function returned.
	Type string `json:"type"`
	// Message is the error text.
	Message string `json:"message"`
	// Traceback is the stack trace captured where the failure was observed.
	Traceback string `json:"traceback"`
}

// Error returns "<Type>: <Message>".
func (e *CallError) Error() string { return e.Type + ": " + e.Message }

// ErrorType returns e.Type.
func (e *CallError) ErrorType() string { return e.Type }

// NewError returns an error with text message whose ErrorType method
// returns typ, so task functions can fail with Python-style types:
//
//	return nil, registry.NewError("ValueError", "This task was designed to fail")
//
// The error is immutable and safe for concurrent use.
func NewError(typ, message string) error {
	return &typedError{typ: typ, msg: message}
}

type typedError struct {
	typ string
	msg string
}

func (e *typedError) Error() string     { return e.msg }
func (e *typedError) ErrorType() string { return e.typ }

// ErrorType names err as a function task's artifact and a failed job report
// it. If any error in err's chain (as [errors.As] walks it) has a method
// ErrorType() string, its result is used; otherwise the name of err's
// dynamic type without pointers and package: *fs.PathError gives
// "PathError", errors.New gives "errorString". ErrorType(nil) is "".
// It is safe for concurrent use.
func ErrorType(err error) string { return problem.ErrorType(err) }
