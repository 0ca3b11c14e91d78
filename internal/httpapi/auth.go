package httpapi

import (
	"context"
	"crypto/subtle"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/problem"
)

// Auth is the resolved API-key configuration.
type Auth struct {
	// Header is the request header carrying the key.
	Header string
	// Keys are the accepted keys; never empty.
	Keys []string
	// Exempt are the request paths served without a key, matched exactly.
	Exempt []string
	// Source ("direct", "file" or "env") and From (the file path or the
	// variable name) say where the keys came from, for the start-up log.
	Source, From string
}

// keyPrefix is the only part of a key that is ever logged: its first 7
// characters, or *** for a shorter key.
func keyPrefix(key string) string {
	if len(key) < 7 {
		return "***"
	}
	return key[:7]
}

type apiKeyPrefixKey struct{}

// APIKeyPrefix returns the prefix (first 7 characters) of the API key that
// authenticated the request of ctx, or "" when the request was not
// authenticated (auth off, or an exempt path).
func APIKeyPrefix(ctx context.Context) string {
	s, _ := ctx.Value(apiKeyPrefixKey{}).(string)
	return s
}

// logKeySource logs where the keys came from, once per app.
func (s *Server) logKeySource(k *Auth) {
	switch k.Source {
	case "direct":
		s.log.Warn("Using direct API keys - not recommended for production", "count", len(k.Keys))
	case "file":
		s.log.Info("auth.keys_loaded", "source", "file", "path", k.From, "count", len(k.Keys))
	default:
		s.log.Info("auth.keys_loaded", "source", "env", "env_var", k.From, "count", len(k.Keys))
	}
}

// exemptPaths is the set of paths served without a key. The docs page is
// useless without its scripts and styles: when /docs is exempt and
// mounted, so are its embedded assets (exact paths, nothing else).
func (s *Server) exemptPaths() map[string]bool {
	exempt := map[string]bool{}
	for _, p := range s.d.Auth.Exempt {
		exempt[p] = true
	}
	if exempt[docsPath] && s.d.Docs {
		for _, name := range docsAssetNames() {
			exempt[docsPath+"/"+name] = true
		}
	}
	// The console must load to ask for a key: its page, assets and
	// config (which holds no secret) are always open. Every API call it
	// makes then carries the key.
	for _, p := range s.consolePaths() {
		exempt[p] = true
	}
	return exempt
}

// authenticate is the API-key check. It runs before routing, so unknown
// paths get 401 too; 401 bodies are problem details whose instance is the
// path alone.
func (s *Server) authenticate(k *Auth) echo.MiddlewareFunc {
	header := k.Header
	exempt := s.exemptPaths()
	keys := make([][]byte, len(k.Keys))
	for i, key := range k.Keys {
		keys[i] = []byte(key)
	}
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			req := c.Request()
			path := req.URL.Path
			if exempt[path] {
				return next(c)
			}
			fail := func(detail string) error {
				return &problem.Error{Kind: problem.KindUnauthorized, Op: "chapkit.authenticate", Detail: detail, Instance: path}
			}
			key := req.Header.Get(header)
			if key == "" {
				s.log.Warn("auth.missing_key", "method", req.Method, "path", path)
				return fail("Missing authentication header: " + header)
			}
			// Compare with every key, without stopping at a match, so the
			// time taken says nothing about which key or how much matched.
			match := 0
			for _, want := range keys {
				match |= subtle.ConstantTimeCompare(want, []byte(key))
			}
			prefix := keyPrefix(key)
			if match != 1 {
				s.log.Warn("auth.invalid_key", "key_prefix", prefix, "method", req.Method, "path", path)
				return fail("Invalid API key")
			}
			s.log.Debug("auth.success", "key_prefix", prefix, "method", req.Method, "path", path)
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), apiKeyPrefixKey{}, prefix)))
			return next(c)
		}
	}
}
