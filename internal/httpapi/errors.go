package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/problem"
)

// family is how a route renders errors whose kind does not fix a body of
// its own: as problem details (application/problem+json) or as a plain
// {"detail": ...} object. docs/http-api.md lists which routes use which.
type family int

const (
	familyNone    family = iota // no marker: renders as problem details
	familyProblem               // problem details
	familyDetail                // {"detail": "..."}
)

const familyKey = "chapkit.family"

// withFamily marks the routes of a group with their error family; handlers
// never choose.
func withFamily(f family) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			c.Set(familyKey, f)
			return next(c)
		}
	}
}

// detailBody is the family B body.
type detailBody struct {
	Detail any `json:"detail"`
}

// handleError is the one place errors become HTTP responses.
func (s *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	req := c.Request()
	var pe *problem.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		s.renderProblem(c, pe)
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			s.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{"Not Found"})
		case http.StatusMethodNotAllowed:
			s.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{"Method Not Allowed"})
		case http.StatusRequestEntityTooLarge:
			s.renderProblem(c, tooLarge(s.d.MaxBodyBytes))
		default:
			msg := http.StatusText(he.Code)
			if text, ok := he.Message.(string); ok && text != "" {
				msg = text
			}
			if he.Code >= 500 {
				s.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "error", err)
				msg = http.StatusText(he.Code)
			}
			s.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{msg})
		}
	default:
		if errors.Is(err, context.Canceled) {
			s.log.Debug("request cancelled by the client", "method", req.Method, "path", req.URL.Path)
		} else {
			s.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "error", err)
		}
		s.send(c, http.StatusInternalServerError, echo.MIMETextPlainCharsetUTF8, "Internal Server Error")
	}
}

func (s *Server) renderProblem(c echo.Context, pe *problem.Error) {
	status := pe.Kind.Status()
	if pe.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(pe.RetryAfter))
	}
	switch pe.Kind {
	case problem.KindRequestInvalid:
		items := pe.Items
		if items == nil {
			items = []problem.Violation{}
		}
		s.send(c, status, echo.MIMEApplicationJSON, detailBody{items})
		return
	case problem.KindModelInvalid:
		s.send(c, status, echo.MIMEApplicationJSON, map[string]any{"detail": "Validation error", "errors": pe.Detail})
		return
	case problem.KindDatabase:
		s.log.Error("database error", "op", pe.Op, "error", pe.Err)
		text := ""
		if pe.Err != nil {
			text = pe.Err.Error()
		}
		s.send(c, status, echo.MIMEApplicationJSON, struct {
			Detail string `json:"detail"`
			Error  string `json:"error"`
		}{"Database error occurred", text})
		return
	case problem.KindInternal:
		s.log.Error("request failed", "op", pe.Op, "path", c.Request().URL.Path, "error", pe)
		s.send(c, status, echo.MIMETextPlainCharsetUTF8, "Internal Server Error")
		return
	case problem.KindUnavailable:
		// A busy or unreachable database is transient: 503 with
		// Retry-After in the route's own family, and the cause in the logs
		// only. The service's own refusals (drain, full queue, too many
		// streams) carry no cause and stay problem details everywhere.
		if pe.Err != nil {
			s.log.Warn("database busy or unavailable", "op", pe.Op, "path", c.Request().URL.Path, "error", pe.Err)
			if f, _ := c.Get(familyKey).(family); f == familyDetail {
				s.send(c, status, echo.MIMEApplicationJSON, detailBody{pe.Detail})
				return
			}
		}
	case problem.KindInvalidULID, problem.KindUnsupportedMediaType,
		problem.KindTooLarge, problem.KindUnauthorized, problem.KindForbidden:
		// These are problem details on every route, whatever its family.
	default:
		if f, _ := c.Get(familyKey).(family); f == familyDetail {
			s.send(c, status, echo.MIMEApplicationJSON, detailBody{pe.Detail})
			return
		}
	}
	s.send(c, status, "application/problem+json", pe.ProblemDetails(requestURL(c)))
}

// requestURL is the full URL of the request, the default problem instance.
func requestURL(c echo.Context) string {
	r := c.Request()
	u := c.Scheme() + "://" + r.Host + r.URL.Path
	if r.URL.RawQuery != "" {
		u += "?" + r.URL.RawQuery
	}
	return u
}

// send writes a JSON (or text) body; HEAD gets none.
func (s *Server) send(c echo.Context, status int, contentType string, body any) {
	var b []byte
	if text, ok := body.(string); ok {
		b = []byte(text)
	} else {
		var err error
		b, err = json.Marshal(body)
		if err != nil {
			s.log.Error("encode error body", "error", err)
			status, contentType, b = http.StatusInternalServerError, echo.MIMETextPlainCharsetUTF8, []byte("Internal Server Error")
		}
	}
	if c.Request().Method == http.MethodHead {
		c.Response().Header().Set(echo.HeaderContentType, contentType)
		_ = c.NoContent(status)
		return
	}
	_ = c.Blob(status, contentType, b)
}

func tooLarge(limit int64) *problem.Error {
	return problem.New(problem.KindTooLarge, "chapkit.decodeBody", "Request body exceeds the limit of %d bytes", limit)
}

// decodeBody reads a JSON request body: the content type must be JSON
// (application/json or any +json type; application/x-www-form-urlencoded
// is let through and parsed as JSON too), the body must fit the
// size cap (413 beyond), and a missing or malformed body is a 422 with
// FastAPI's validation items. Numbers are kept as json.Number.
func (s *Server) decodeBody(c echo.Context) (any, error) {
	const op = "chapkit.decodeBody"
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ok := err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/x-www-form-urlencoded")
		if !ok {
			return nil, problem.New(problem.KindUnsupportedMediaType, op, "Unsupported content type %q: send application/json", ct)
		}
	}
	limit := s.d.MaxBodyBytes
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read request body: %w", err)
	}
	if int64(len(data)) > limit {
		return nil, tooLarge(limit)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, problem.Invalid(op, problem.Violation{Type: "missing", Loc: []any{"body"}, Msg: "Field required", Input: nil})
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err = dec.Decode(&v)
	if err == nil && dec.More() {
		return nil, jsonInvalid(op, int(dec.InputOffset()), "extra data after the JSON value")
	}
	if err != nil {
		var se *json.SyntaxError
		offset := len(data)
		if errors.As(err, &se) {
			offset = int(se.Offset)
		}
		return nil, jsonInvalid(op, offset, err.Error())
	}
	return v, nil
}

func jsonInvalid(op string, offset int, msg string) *problem.Error {
	return problem.Invalid(op, problem.Violation{
		Type: "json_invalid", Loc: []any{"body", offset}, Msg: "JSON decode error",
		Input: map[string]any{}, Ctx: map[string]any{"error": msg},
	})
}
