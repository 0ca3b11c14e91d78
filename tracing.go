package chapkit

import (
	"errors"

	"go.opentelemetry.io/otel/trace"
)

// WithTracing traces the service with OpenTelemetry spans from tp
// (docs/tracing.md):
//
//   - one server span per HTTP request, named "METHOD /route/:param",
//     with the method, route and status code; an incoming W3C traceparent
//     header continues the caller's trace, and a 5xx sets status Error;
//   - one consumer span per job execution, "execute <kind>", whose parent
//     and link are the span of the request that submitted the job. That
//     span context is stored with the job (as a W3C traceparent), so the
//     link survives a restart and holds when another node runs the job;
//   - a child span for the shell command ("shell", with the exit code and
//     timed_out; a non-zero exit or a timeout sets status Error) or for the
//     function call ("function <name>", status Error when it failed).
//
// The host program owns tp: it chooses the exporter and sampler and shuts
// tp down after [App.Shutdown]. Without WithTracing nothing is traced and
// the request and job paths only check a nil pointer. A nil tp is a Build
// error.
func (b *ServiceBuilder) WithTracing(tp trace.TracerProvider) *ServiceBuilder {
	if tp == nil {
		return b.fail(errors.New("WithTracing: nil TracerProvider"))
	}
	b.tracerProvider = tp
	return b
}
