package job

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chapkit-go/chapkit/internal/reqid"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/internal/tracing"
)

// seen is what a handler observed of its context.
type seen struct {
	RequestID string
	TraceID   string
	ParentOK  bool // the handler's span is a child of the submitter's
}

func TestSubmitCarriesTheRequest(t *testing.T) {
	const rid = "01JCSEED0000000000000JB003"
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()), sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	for _, tc := range []struct {
		name      string
		tp        trace.TracerProvider
		kind      string
		wantTrace bool
		status    codes.Code
	}{
		{"without tracing the request id alone is kept", nil, "see", false, codes.Unset},
		{"with tracing the execution continues the submitter's trace", tp, "see", true, codes.Unset},
		{"a panicking handler leaves its span in error", tp, "panic", true, codes.Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan seen, 1)
			var submitter trace.SpanContext
			b := setup(t, Config{TracerProvider: tc.tp}, map[string]Handler{
				"see": func(ctx context.Context, r *Run) (any, error) {
					sp := trace.SpanFromContext(ctx)
					v := seen{RequestID: reqid.From(ctx), TraceID: sp.SpanContext().TraceID().String()}
					if ro, ok := sp.(sdktrace.ReadOnlySpan); ok {
						v.ParentOK = ro.Parent().SpanID() == submitter.SpanID()
					}
					got <- v
					return nil, nil
				},
				"panic": func(ctx context.Context, r *Run) (any, error) { panic("boom") },
			})
			ctx, span := tp.Tracer("test").Start(reqid.With(t.Context(), rid), "submit")
			submitter = span.SpanContext()
			id, err := b.s.Submit(ctx, tc.kind, nil)
			span.End()
			if err != nil {
				t.Fatal(err)
			}
			j := wait(t, b.s, id)
			if deref(j.RequestID) != rid {
				t.Errorf("stored request_id = %v, want %s", j.RequestID, rid)
			}
			wantTP := "<nil>" // how deref shows nil
			if tc.wantTrace {
				wantTP = tracing.TraceParent(ctx)
			}
			if deref(j.TraceParent) != wantTP {
				t.Errorf("stored trace_parent = %q, want %q", deref(j.TraceParent), wantTP)
			}
			if tc.kind == "see" {
				want := seen{RequestID: rid, TraceID: trace.TraceID{}.String()}
				if tc.wantTrace {
					want.TraceID, want.ParentOK = submitter.TraceID().String(), true
				}
				if diff := cmp.Diff(want, <-got); diff != "" {
					t.Errorf("handler context mismatch (-want +got):\n%s", diff)
				}
			}
			if !tc.wantTrace {
				return
			}
			// The span ends right after the outcome is stored: poll.
			var exec sdktrace.ReadOnlySpan
			testkit.Eventually(t, testkit.Deadline, "the execution span", func() bool {
				for _, s := range rec.Ended() {
					if s.Name() == "execute "+tc.kind && s.SpanContext().TraceID() == submitter.TraceID() {
						exec = s
					}
				}
				return exec != nil
			})
			if exec.Status().Code != tc.status || len(exec.Links()) != 1 || exec.Links()[0].SpanContext.SpanID() != submitter.SpanID() {
				t.Errorf("execution span status %v, links %v; want %v and a link to %s", exec.Status(), exec.Links(), tc.status, submitter.SpanID())
			}
		})
	}
}
