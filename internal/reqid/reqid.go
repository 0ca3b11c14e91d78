// Package reqid carries the id of the HTTP request that caused some work
// in a context.Context. The HTTP layer sets it for each request; the job
// scheduler sets it again for each execution, from the id stored with the
// job, so that log lines written while a job runs name the request that
// submitted it, even after a restart. It is a leaf package so that both
// sides can use it without depending on each other.
package reqid

import "context"

type key struct{}

// With returns a copy of ctx that carries id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the request id ctx carries, or "".
func From(ctx context.Context) string {
	s, _ := ctx.Value(key{}).(string)
	return s
}
