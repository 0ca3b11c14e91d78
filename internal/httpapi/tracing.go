package httpapi

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/chapkit-go/chapkit/internal/tracing"
)

// traceRequests is the tracing middleware: one server span per request,
// continuing the trace of an incoming W3C traceparent header. It runs
// before routing, outermost, so refused requests (401, redirects) are
// traced too; the span is renamed "METHOD /route/:param" once routing has
// found the route. Statuses of 500 and above set the span's status to
// Error (a 4xx is the client's mistake, not the server's). The request's
// context carries the span, so a job submitted by the request stores it
// (docs/tracing.md).
func (s *Server) traceRequests(tp trace.TracerProvider) echo.MiddlewareFunc {
	tracer := tp.Tracer(tracing.Scope)
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			method := methodLabel(req.Method)
			ctx := tracing.W3C.Extract(req.Context(), propagation.HeaderCarrier(req.Header))
			scheme := "http"
			if req.TLS != nil {
				scheme = "https"
			}
			ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
				semconv.HTTPRequestMethodKey.String(method),
				semconv.URLPath(req.URL.Path),
				semconv.URLScheme(scheme),
				semconv.ClientAddress(c.RealIP()),
				semconv.UserAgentOriginal(req.UserAgent()),
			))
			defer span.End()
			if method != req.Method {
				span.SetAttributes(semconv.HTTPRequestMethodOriginal(req.Method))
			}
			c.SetRequest(req.WithContext(ctx))
			err := next(c)
			if err != nil {
				c.Error(err)
			}
			if route := c.Path(); route != "" && !unrouted(err) {
				span.SetName(method + " " + route)
				span.SetAttributes(semconv.HTTPRoute(route))
			}
			status := c.Response().Status
			span.SetAttributes(semconv.HTTPResponseStatusCode(status))
			// The request id is set by the logging middleware, inside
			// this one, on the request c holds now.
			if id := RequestID(c.Request().Context()); id != "" {
				span.SetAttributes(tracing.RequestIDKey.String(id))
			}
			if status >= http.StatusInternalServerError {
				span.SetAttributes(semconv.ErrorTypeKey.String(strconv.Itoa(status)))
				if err != nil {
					span.RecordError(err)
				}
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			return nil
		}
	}
}

// unrouted reports whether err is the router's own 404: no route matched,
// so the path Echo reports is not a route.
func unrouted(err error) bool {
	return errors.Is(err, echo.ErrNotFound)
}
