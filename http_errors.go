package chapkit

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
	"github.com/labstack/echo/v4/middleware"

	"github.com/chapkit-go/chapkit/problem"
)

// family is how a route renders errors that do not carry their own body
// family (CONTRACT §1.5): problem details (A) or a plain detail (B).
type family int

const (
	familyProblem family = iota
	familyDetail
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

func (a *App) newEcho() *echo.Echo {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.JSONSerializer = compactJSON{}
	e.HTTPErrorHandler = a.handleError
	a.installMiddleware(e) // first: auth runs before any rewrite or redirect
	e.Pre(unescapeDollar)
	e.Pre(middleware.RemoveTrailingSlashWithConfig(middleware.TrailingSlashConfig{RedirectCode: http.StatusTemporaryRedirect}))
	return e
}

// unescapeDollar lets clients spell the $ of operation segments as %24
// (/tasks/{id}/%24execute): Echo routes on the raw path when the request
// has one, so the escape is undone before routing.
func unescapeDollar(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		u := c.Request().URL
		if u.RawPath != "" && strings.Contains(u.RawPath, "%24") {
			raw := strings.ReplaceAll(u.RawPath, "%24", "$")
			if raw == u.Path {
				raw = ""
			}
			u.RawPath = raw
		}
		return next(c)
	}
}

// detailBody is the family B body.
type detailBody struct {
	Detail any `json:"detail"`
}

// handleError is the one place errors become HTTP responses.
func (a *App) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	req := c.Request()
	var pe *problem.Error
	var he *echo.HTTPError
	switch {
	case errors.As(err, &pe):
		a.renderProblem(c, pe)
	case errors.As(err, &he):
		switch he.Code {
		case http.StatusNotFound:
			a.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{"Not Found"})
		case http.StatusMethodNotAllowed:
			a.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{"Method Not Allowed"})
		case http.StatusRequestEntityTooLarge:
			a.renderProblem(c, tooLarge(a.b.limits.MaxBodyBytes))
		default:
			msg := http.StatusText(he.Code)
			if s, ok := he.Message.(string); ok && s != "" {
				msg = s
			}
			if he.Code >= 500 {
				a.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "error", err)
				msg = http.StatusText(he.Code)
			}
			a.send(c, he.Code, echo.MIMEApplicationJSON, detailBody{msg})
		}
	default:
		if errors.Is(err, context.Canceled) {
			a.log.Debug("request cancelled by the client", "method", req.Method, "path", req.URL.Path)
		} else {
			a.log.Error("request failed", "method", req.Method, "path", req.URL.Path, "error", err)
		}
		a.send(c, http.StatusInternalServerError, echo.MIMETextPlainCharsetUTF8, "Internal Server Error")
	}
}

func (a *App) renderProblem(c echo.Context, pe *problem.Error) {
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
		a.send(c, status, echo.MIMEApplicationJSON, detailBody{items})
		return
	case problem.KindModelInvalid:
		a.send(c, status, echo.MIMEApplicationJSON, map[string]any{"detail": "Validation error", "errors": pe.Detail})
		return
	case problem.KindDatabase:
		a.log.Error("database error", "op", pe.Op, "error", pe.Err)
		text := ""
		if pe.Err != nil {
			text = pe.Err.Error()
		}
		a.send(c, status, echo.MIMEApplicationJSON, struct {
			Detail string `json:"detail"`
			Error  string `json:"error"`
		}{"Database error occurred", text})
		return
	case problem.KindInternal:
		a.log.Error("request failed", "op", pe.Op, "path", c.Request().URL.Path, "error", pe)
		a.send(c, status, echo.MIMETextPlainCharsetUTF8, "Internal Server Error")
		return
	case problem.KindInvalidULID, problem.KindUnavailable, problem.KindUnsupportedMediaType,
		problem.KindTooLarge, problem.KindUnauthorized, problem.KindForbidden:
		// These are problem details on every route (CONTRACT §1.5).
	default:
		if f, _ := c.Get(familyKey).(family); f == familyDetail {
			a.send(c, status, echo.MIMEApplicationJSON, detailBody{pe.Detail})
			return
		}
	}
	a.send(c, status, "application/problem+json", pe.ProblemDetails(requestURL(c)))
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
func (a *App) send(c echo.Context, status int, contentType string, body any) {
	var b []byte
	if s, ok := body.(string); ok {
		b = []byte(s)
	} else {
		var err error
		b, err = json.Marshal(body)
		if err != nil {
			a.log.Error("encode error body", "error", err)
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

// decodeBody reads a JSON request body by the rules of CONTRACT §1.4 and
// D13: accepted content types, the size cap, and the FastAPI 422 items for
// a missing or malformed body. Numbers are kept as json.Number.
func (a *App) decodeBody(c echo.Context) (any, error) {
	const op = "chapkit.decodeBody"
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		ok := err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json") || mt == "application/x-www-form-urlencoded")
		if !ok {
			return nil, problem.New(problem.KindUnsupportedMediaType, op, "Unsupported content type %q: send application/json", ct)
		}
	}
	limit := a.b.limits.MaxBodyBytes
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

// compactJSON writes bodies as chapkit does: compact, without the trailing
// newline of Echo's default encoder, so success and error bodies match
// byte for byte.
type compactJSON struct{}

func (compactJSON) Serialize(c echo.Context, i any, indent string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "<" stays "<" in stdout, as chapkit sends it
	if indent != "" {
		enc.SetIndent("", indent)
	}
	if err := enc.Encode(i); err != nil {
		return err
	}
	_, err := c.Response().Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
	return err
}

func (compactJSON) Deserialize(c echo.Context, i any) error {
	return json.NewDecoder(c.Request().Body).Decode(i)
}
