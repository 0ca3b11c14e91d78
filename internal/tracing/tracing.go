// Package tracing holds the few OpenTelemetry helpers the HTTP layer, the
// job scheduler and the task runner share: the instrumentation scope name,
// the W3C traceparent text a job stores, and child spans that cost nothing
// when tracing is off. Only the OpenTelemetry API is imported here; the
// SDK is the host program's choice. See docs/tracing.md.
package tracing

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Scope is the instrumentation scope (tracer name) of every span chapkit
// starts.
const Scope = "github.com/chapkit-go/chapkit"

// Attribute keys of our own, for what no semantic convention names.
const (
	JobIDKey     = attribute.Key("chapkit.job.id")
	JobKindKey   = attribute.Key("chapkit.job.kind")
	AttemptKey   = attribute.Key("chapkit.job.attempt")
	TriggerKey   = attribute.Key("chapkit.job.trigger")
	RequestIDKey = attribute.Key("chapkit.request_id")
	TaskIDKey    = attribute.Key("chapkit.task.id")
	FunctionKey  = attribute.Key("chapkit.task.function")
	TimedOutKey  = attribute.Key("chapkit.task.timed_out")
)

// W3C is the propagator of incoming requests and of the stored context:
// the W3C traceparent and tracestate headers.
var W3C propagation.TextMapPropagator = propagation.TraceContext{}

// TraceParent returns the W3C traceparent of the span in ctx
// ("00-<trace id>-<span id>-<flags>"), or "" when ctx holds no valid span
// context.
func TraceParent(ctx context.Context) string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ""
	}
	c := propagation.MapCarrier{}
	W3C.Inject(ctx, c)
	return c.Get("traceparent")
}

// Parse returns the span context a traceparent names; it is not valid
// when the text is malformed. The context is marked remote: it was made by
// another process, or by this one before a restart.
func Parse(traceparent string) trace.SpanContext {
	ctx := W3C.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	return trace.SpanContextFromContext(ctx)
}

// Span is a child span started by [StartChild]. A nil *Span is a span
// that was not started; its methods do nothing.
type Span struct{ s trace.Span }

// StartChild starts an internal span named name under the span of ctx,
// with the tracer provider of that span. When ctx holds no recording span
// (tracing is off, or the trace was sampled out) it starts nothing and
// returns ctx and nil: the cost is one context lookup.
func StartChild(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, *Span) {
	parent := trace.SpanFromContext(ctx)
	if !parent.IsRecording() {
		return ctx, nil
	}
	ctx, s := parent.TracerProvider().Tracer(Scope).Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	return ctx, &Span{s}
}

// End adds attrs and ends the span. A non-nil err is recorded as an
// exception event and sets the status to Error with its text.
func (s *Span) End(err error, attrs ...attribute.KeyValue) {
	if s == nil {
		return
	}
	s.s.SetAttributes(attrs...)
	if err != nil {
		Fail(s.s, err)
	}
	s.s.End()
}

// Fail records err on span and sets its status to Error.
func Fail(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
