package chapkit

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/problem"
)

// AuthConfig configures API-key authentication (CONTRACT §4.10). The zero
// value reads the keys from the CHAPKIT_API_KEYS environment variable (or
// the file named by CHAPKIT_API_KEY_FILE) and expects them in X-API-Key.
type AuthConfig struct {
	// APIKeys are the accepted keys, given in code. Not recommended for
	// production: a warning is logged once per app when they are used.
	APIKeys []string
	// APIKeyFile names a file with one key per line; blank lines and lines
	// starting with # are skipped. Used when APIKeys is nil.
	APIKeyFile string
	// EnvVar names the environment variable holding comma-separated keys,
	// read when neither APIKeys nor APIKeyFile is given; default
	// CHAPKIT_API_KEYS.
	EnvVar string
	// HeaderName is the request header carrying the key; default X-API-Key.
	HeaderName string
	// UnauthenticatedPaths are request paths served without a key, matched
	// exactly. A non-empty list replaces the default /docs, /redoc,
	// /openapi.json, /health and /.
	UnauthenticatedPaths []string
}

// DefaultAPIKeysEnv is the default environment variable of the API keys.
const DefaultAPIKeysEnv = "CHAPKIT_API_KEYS"

// APIKeyFileEnv names the environment variable that holds the path of an
// API key file, read when no keys and no file are given in code (CONTRACT D9).
const APIKeyFileEnv = "CHAPKIT_API_KEY_FILE"

// defaultUnauthenticatedPaths are served without a key unless
// AuthConfig.UnauthenticatedPaths says otherwise.
var defaultUnauthenticatedPaths = []string{"/docs", "/redoc", "/openapi.json", "/health", "/"}

// authConfig is what WithAuth records; keys are resolved by validate.
type authConfig struct {
	cfg  AuthConfig
	keys *resolvedKeys
}

// resolvedKeys is the key set of an app and where it came from.
type resolvedKeys struct {
	keys   []string
	source string // "direct", "file" or "env"
	from   string // the file path or variable name
}

// WithAuth turns on API-key authentication in front of every route
// (CONTRACT §4.10). Keys are resolved when Build runs: a missing key file
// or an empty key set is a Build error.
func (b *ServiceBuilder) WithAuth(cfg AuthConfig) *ServiceBuilder {
	cfg.APIKeys = slices.Clone(cfg.APIKeys) // keeps nil apart from empty
	cfg.UnauthenticatedPaths = slices.Clone(cfg.UnauthenticatedPaths)
	b.ops.auth = &authConfig{cfg: cfg}
	return b
}

// WithAuthFromEnv turns on authentication with the defaults of [AuthConfig]
// only when CHAPKIT_API_KEYS or CHAPKIT_API_KEY_FILE is set, and leaves
// every route open otherwise: the behaviour of the example services
// (CONTRACT Appendix A.0). The variables are read when it is called.
func (b *ServiceBuilder) WithAuthFromEnv() *ServiceBuilder {
	if os.Getenv(DefaultAPIKeysEnv) == "" && os.Getenv(APIKeyFileEnv) == "" {
		return b
	}
	return b.WithAuth(AuthConfig{})
}

// errNoKeys is the contract's text for an empty key set.
var errNoKeys = errors.New("No API keys configured. Provide api_keys, api_key_file, or set environment variable.")

// resolveKeys reads the keys from the first configured source: keys in
// code, the key file, the environment variable, then the file named by
// CHAPKIT_API_KEY_FILE (CONTRACT D9).
func resolveKeys(cfg AuthConfig) (*resolvedKeys, error) {
	envVar := orDefault(cfg.EnvVar, DefaultAPIKeysEnv)
	var r resolvedKeys
	switch {
	case cfg.APIKeys != nil:
		// An empty, non-nil list is a choice of source with no keys in it:
		// an error, as in chapkit, not a fall-through to the environment.
		var keys []string
		for _, k := range cfg.APIKeys {
			if k != "" {
				keys = append(keys, k)
			}
		}
		r = resolvedKeys{keys: keys, source: "direct"}
	case cfg.APIKeyFile != "":
		keys, err := LoadAPIKeysFromFile(cfg.APIKeyFile)
		if err != nil {
			return nil, err
		}
		r = resolvedKeys{keys: keys, source: "file", from: cfg.APIKeyFile}
	default:
		keys := LoadAPIKeysFromEnv(envVar)
		r = resolvedKeys{keys: keys, source: "env", from: envVar}
		if len(keys) == 0 {
			if path := os.Getenv(APIKeyFileEnv); path != "" {
				fk, err := LoadAPIKeysFromFile(path)
				if err != nil {
					return nil, err
				}
				r = resolvedKeys{keys: fk, source: "file", from: path}
			}
		}
	}
	if len(r.keys) == 0 {
		return nil, errNoKeys
	}
	return &r, nil
}

// LoadAPIKeysFromEnv returns the comma-separated keys of the environment
// variable name, each trimmed, empty items dropped; nil when unset or empty.
func LoadAPIKeysFromEnv(name string) []string {
	var keys []string
	for item := range strings.SplitSeq(os.Getenv(name), ",") {
		if k := strings.TrimSpace(item); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// LoadAPIKeysFromFile reads one key per line from path: lines are trimmed,
// blank lines and lines starting with # are skipped. A missing file is the
// error "API key file not found: <path>".
func LoadAPIKeysFromFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("API key file not found: %s", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read API key file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read API key file %s: %w", path, err)
	}
	return keys, nil
}

// ValidateAPIKeyFormat reports whether key is long enough to be a key
// (16 characters or more). Nothing enforces it; it is for key tooling.
func ValidateAPIKeyFormat(key string) bool { return len(key) >= 16 }

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
func (a *App) logKeySource(k *resolvedKeys) {
	switch k.source {
	case "direct":
		a.log.Warn("Using direct API keys - not recommended for production", "count", len(k.keys))
	case "file":
		a.log.Info("auth.keys_loaded", "source", "file", "path", k.from, "count", len(k.keys))
	default:
		a.log.Info("auth.keys_loaded", "source", "env", "env_var", k.from, "count", len(k.keys))
	}
}

// authenticate is the API-key check. It runs before routing, so unknown
// paths get 401 too; 401 bodies are problem details whose instance is the
// path alone.
func (a *App) authenticate(cfg AuthConfig, k *resolvedKeys) echo.MiddlewareFunc {
	header := orDefault(cfg.HeaderName, "X-API-Key")
	exempt := map[string]bool{}
	paths := cfg.UnauthenticatedPaths
	if len(paths) == 0 {
		paths = defaultUnauthenticatedPaths
	}
	for _, p := range paths {
		exempt[p] = true
	}
	// The docs page is useless without its scripts and styles: when /docs
	// is exempt, so are its embedded assets (exact paths, nothing else).
	if exempt[docsPath] && a.b.ops.docs {
		for _, name := range docsAssetNames() {
			exempt[docsPath+"/"+name] = true
		}
	}
	keys := make([][]byte, len(k.keys))
	for i, s := range k.keys {
		keys[i] = []byte(s)
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
				a.log.Warn("auth.missing_key", "method", req.Method, "path", path)
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
				a.log.Warn("auth.invalid_key", "key_prefix", prefix, "method", req.Method, "path", path)
				return fail("Invalid API key")
			}
			a.log.Debug("auth.success", "key_prefix", prefix, "method", req.Method, "path", path)
			c.SetRequest(req.WithContext(context.WithValue(req.Context(), apiKeyPrefixKey{}, prefix)))
			return next(c)
		}
	}
}
