package httpapi

import (
	"context"
	"log/slog"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/reqid"
	"github.com/chapkit-go/chapkit/internal/wire"
)

// RequestIDHeader is the response header carrying the request id. With
// request logging on, every response that passes the logging middleware
// carries it: the client's own id when it is a valid ULID, a fresh one
// otherwise.
const RequestIDHeader = "X-Request-ID"

// RequestID returns the id of the request of ctx, as sent in X-Request-ID,
// or "" when request logging is off. Inside a job's execution it is the id
// of the request that submitted the job.
func RequestID(ctx context.Context) string {
	return reqid.From(ctx)
}

// logRequests is the request-logging middleware. It handles the error of
// the request itself (as Echo's RequestLogger does with HandleError) so
// the logged status is the one sent.
func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		id := req.Header.Get(RequestIDHeader)
		if !wire.ValidID(id) {
			id = wire.NewID()
		}
		c.Response().Header().Set(RequestIDHeader, id)
		ctx := reqid.With(req.Context(), id)
		c.SetRequest(req.WithContext(ctx))
		start := time.Now()
		s.log.LogAttrs(ctx, slog.LevelInfo, "http.request.start",
			slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.String("client", c.RealIP()))
		if err := next(c); err != nil {
			c.Error(err)
			if status := c.Response().Status; status >= 500 {
				s.log.LogAttrs(ctx, slog.LevelError, "http.request.error",
					slog.String("method", req.Method), slog.String("path", req.URL.Path),
					slog.Int("status", status), slog.String("error", err.Error()))
			}
		}
		s.log.LogAttrs(ctx, slog.LevelInfo, "http.request.complete",
			slog.String("method", req.Method), slog.String("path", req.URL.Path),
			slog.Int("status", c.Response().Status),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000))
		return nil
	}
}

// WithRequestAttrs wraps l so that records logged with a request's
// context carry its request id (and the API key prefix when authenticated).
func WithRequestAttrs(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(requestAttrsHandler); ok {
		return l
	}
	return slog.New(requestAttrsHandler{l.Handler()})
}

type requestAttrsHandler struct{ h slog.Handler }

func (h requestAttrsHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.h.Enabled(ctx, l)
}

func (h requestAttrsHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String("request_id", id))
		if p := APIKeyPrefix(ctx); p != "" {
			r.AddAttrs(slog.String("key_prefix", p))
		}
	}
	return h.h.Handle(ctx, r)
}

func (h requestAttrsHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return requestAttrsHandler{h.h.WithAttrs(attrs)}
}

func (h requestAttrsHandler) WithGroup(name string) slog.Handler {
	return requestAttrsHandler{h.h.WithGroup(name)}
}
