package task

import (
	"os"
	"strings"
)

// deniedEnv names the service's own secrets, which no task inherits
// whatever [Config.InheritEnv] says: the API key variables, and the
// database URL and password variables of common drivers.
var deniedEnv = map[string]bool{
	"CHAPKIT_API_KEYS":     true,
	"CHAPKIT_API_KEY_FILE": true,
	"DATABASE_URL":         true,
	"PGPASSWORD":           true,
	"PGPASSFILE":           true,
	"MYSQL_PWD":            true,
}

// taskEnv returns the environment of a shell task from the service's
// environment: the variables [Config.InheritEnv] allows (all when nil),
// less the service's secrets (by name, see deniedEnv, and by value, see
// [Config.Secrets]), then [Config.ExtraEnv], which wins over inherited
// entries of the same name.
func (c *Config) taskEnv(environ []string) []string {
	var allow map[string]bool
	if c.InheritEnv != nil {
		allow = make(map[string]bool, len(c.InheritEnv))
		for _, name := range c.InheritEnv {
			allow[name] = true
		}
	}
	extra := make(map[string]bool, len(c.ExtraEnv))
	for _, kv := range c.ExtraEnv {
		name, _, _ := strings.Cut(kv, "=")
		extra[name] = true
	}
	out := make([]string, 0, len(environ)+len(c.ExtraEnv))
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if deniedEnv[name] || allow != nil && !allow[name] || extra[name] || containsSecret(value, c.Secrets) {
			continue
		}
		out = append(out, kv)
	}
	return append(out, c.ExtraEnv...)
}

func containsSecret(value string, secrets []string) bool {
	for _, s := range secrets {
		if s != "" && strings.Contains(value, s) {
			return true
		}
	}
	return false
}

// shellEnv is taskEnv over the service's current environment.
func (c *Config) shellEnv() []string { return c.taskEnv(os.Environ()) }
