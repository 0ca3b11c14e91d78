package job

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/chapkit-go/chapkit/internal/tracing"
)

// startSpan starts the span of one execution of j, a consumer span named
// "execute <kind>". When the job stored the span context of the request
// that submitted it, that context is both the parent of the execution
// span (so the execution shows in the request's trace) and its link (the
// usual mark of work that was queued and runs later, perhaps on another
// node or after a restart). It returns ctx and nil when tracing is off.
func (s *Scheduler) startSpan(ctx context.Context, j *Job) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, nil
	}
	attrs := []attribute.KeyValue{
		tracing.JobIDKey.String(j.ID),
		tracing.JobKindKey.String(j.Kind),
		tracing.AttemptKey.Int(j.Attempt),
	}
	if j.Trigger != nil {
		attrs = append(attrs, tracing.TriggerKey.String(*j.Trigger))
	}
	if j.RequestID != nil {
		attrs = append(attrs, tracing.RequestIDKey.String(*j.RequestID))
	}
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(attrs...)}
	parent := ctx
	if j.TraceParent != nil {
		if sc := tracing.Parse(*j.TraceParent); sc.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			parent = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
	}
	return s.tracer.Start(parent, "execute "+j.Kind, opts...)
}
