package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/problem"
)

// stream writes Server-Sent Events: `data: <json>` lines, flushed each.
type stream struct {
	c    echo.Context
	done func()
	head bool // a HEAD request: every write ends the stream
}

// openStream starts an SSE response, refusing it with 503 past the bound
// on open streams (Deps.MaxStreams) or while the service drains.
func (s *Server) openStream(c echo.Context) (*stream, error) {
	if s.draining.Load() {
		return nil, problem.Unavailable("chapkit.openStream", 30, "The service is shutting down")
	}
	if n := s.streams.Add(1); n > int64(s.d.MaxStreams) {
		s.streams.Add(-1)
		return nil, problem.Unavailable("chapkit.openStream", 5, "Too many open event streams (limit %d); retry later", s.d.MaxStreams)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Connection", "keep-alive")
	h.Set("X-Accel-Buffering", "no")
	c.Response().WriteHeader(http.StatusOK)
	c.Response().Flush()
	st := &stream{c: c, done: func() { s.streams.Add(-1) }}
	if c.Request().Method == http.MethodHead {
		st.head = true // the headers are the whole answer
	}
	return st, nil
}

// errHeadOnly ends the event loop of a HEAD request after the headers.
var errHeadOnly = errors.New("event stream: HEAD request, no events")

func (s *stream) close() { s.done() }

func (s *stream) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.raw(b)
}

func (s *stream) raw(b []byte) error {
	if s.head {
		return errHeadOnly
	}
	if _, err := fmt.Fprintf(s.c.Response(), "data: %s\n\n", b); err != nil {
		return err
	}
	s.c.Response().Flush()
	return nil
}

func (s *stream) comment(text string) error {
	if s.head {
		return errHeadOnly
	}
	if _, err := fmt.Fprintf(s.c.Response(), ": %s\n\n", text); err != nil {
		return err
	}
	s.c.Response().Flush()
	return nil
}

// named writes one event with a type: `event: <name>` and `data: <data>`.
// data must be a single line (JSON is).
func (s *stream) named(name string, data []byte) error {
	if s.head {
		return errHeadOnly
	}
	if _, err := fmt.Fprintf(s.c.Response(), "event: %s\ndata: %s\n\n", name, data); err != nil {
		return err
	}
	s.c.Response().Flush()
	return nil
}
