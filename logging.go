package chapkit

import (
	"context"
	"log/slog"
	"os"
	"strings"

	"github.com/chapkit-go/chapkit/internal/httpapi"
)

// RequestIDHeader is the response header carrying the request id.
const RequestIDHeader = httpapi.RequestIDHeader

// WithLogging turns on request logging: every response
// that passes it gets an X-Request-ID header, a fresh ULID unless the
// client sent a valid one, which handlers read with [RequestID]; each
// request is logged as http.request.start and http.request.complete (and
// http.request.error for a 5xx) on the service logger. Log lines written
// with a request's context (Logger().InfoContext(ctx, ...)) carry its id.
func (b *ServiceBuilder) WithLogging() *ServiceBuilder {
	b.logging = true
	return b
}

// RequestID returns the id of the request of ctx, as sent in X-Request-ID,
// or "" when request logging is off.
func RequestID(ctx context.Context) string { return httpapi.RequestID(ctx) }

// LoggerFromEnv returns a logger configured by the environment: LOG_FORMAT
// "json" writes JSON lines, anything else ("console", the default) text;
// LOG_LEVEL is DEBUG, INFO (default), WARNING (or WARN), ERROR or
// CRITICAL (as ERROR). It writes to standard error.
func LoggerFromEnv() *slog.Logger {
	opts := &slog.HandlerOptions{Level: parseLevel(os.Getenv("LOG_LEVEL"))}
	if strings.EqualFold(strings.TrimSpace(os.Getenv("LOG_FORMAT")), "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func parseLevel(s string) slog.Level {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "DEBUG":
		return slog.LevelDebug
	case "WARNING", "WARN":
		return slog.LevelWarn
	case "ERROR", "CRITICAL":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
