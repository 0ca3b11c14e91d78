package chapkit

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/chapkit-go/chapkit/internal/httpapi"
)

// AuthConfig configures API-key authentication (docs/http-api.md). The zero
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
// API key file, read when no keys and no file are given in code and the
// variable of the keys is empty.
const APIKeyFileEnv = "CHAPKIT_API_KEY_FILE"

// WithAuth turns on API-key authentication in front of every route: a
// request without a valid key gets 401, before routing, so unknown paths
// too. Keys are resolved when Build runs: a missing key file or an empty
// key set is a Build error.
func (b *ServiceBuilder) WithAuth(cfg AuthConfig) *ServiceBuilder {
	cfg.APIKeys = slices.Clone(cfg.APIKeys) // keeps nil apart from empty
	cfg.UnauthenticatedPaths = slices.Clone(cfg.UnauthenticatedPaths)
	b.auth = &cfg
	return b
}

// WithAuthFromEnv turns on authentication with the defaults of [AuthConfig]
// only when CHAPKIT_API_KEYS or CHAPKIT_API_KEY_FILE is set, and leaves
// every route open otherwise, as the example services of the Python
// framework behave. The variables are read when it is called.
func (b *ServiceBuilder) WithAuthFromEnv() *ServiceBuilder {
	if os.Getenv(DefaultAPIKeysEnv) == "" && os.Getenv(APIKeyFileEnv) == "" {
		return b
	}
	return b.WithAuth(AuthConfig{})
}

// errNoKeys is the error for an empty key set, worded as the Python
// framework words it.
var errNoKeys = errors.New("No API keys configured. Provide api_keys, api_key_file, or set environment variable.")

// resolveAuth resolves the keys and the defaults of cfg for the HTTP layer.
func resolveAuth(cfg AuthConfig) (*httpapi.Auth, error) {
	k, err := resolveKeys(cfg)
	if err != nil {
		return nil, err
	}
	exempt := cfg.UnauthenticatedPaths
	if len(exempt) == 0 {
		exempt = defaultUnauthenticatedPaths
	}
	return &httpapi.Auth{
		Header: cmp.Or(cfg.HeaderName, defaultAPIKeyHeader), Keys: k.keys,
		Exempt: slices.Clone(exempt), Source: k.source, From: k.from,
	}, nil
}

// resolvedKeys is the key set of an app and where it came from.
type resolvedKeys struct {
	keys   []string
	source string // "direct", "file" or "env"
	from   string // the file path or variable name
}

// resolveKeys reads the keys from the first configured source: keys in
// code, the key file, the environment variable, then the file named by
// CHAPKIT_API_KEY_FILE when the variable is empty.
func resolveKeys(cfg AuthConfig) (*resolvedKeys, error) {
	envVar := cmp.Or(cfg.EnvVar, DefaultAPIKeysEnv)
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

// APIKeyPrefix returns the prefix (first 7 characters) of the API key that
// authenticated the request of ctx, or "" when the request was not
// authenticated (auth off, or an exempt path).
func APIKeyPrefix(ctx context.Context) string { return httpapi.APIKeyPrefix(ctx) }
