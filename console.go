package chapkit

import (
	"cmp"
	"errors"
	"strings"
)

// defaultConsolePrefix is where WithConsole mounts the console by default.
const defaultConsolePrefix = "/console"

// ConsoleConfig tunes [ServiceBuilder.WithConsole].
type ConsoleConfig struct {
	// Prefix is the console's path; default /console. It must start with
	// a slash; a trailing slash is ignored.
	Prefix string
}

// WithConsole mounts the web console at /console (or cfg.Prefix): pages for
// tasks, jobs (updated live, with the live output of running shell jobs)
// and the service's health, info and headline numbers. Its scripts and
// styles are embedded in the module, so it works offline and needs no
// Node.js to build a service. It shows only what the service allows: a
// read-only task resource gets no edit controls. With API keys on, the
// console page, its two assets and GET {prefix}/config.json are served
// without a key; the console asks for one and sends it with every API
// request. See docs/console.md.
func (b *ServiceBuilder) WithConsole(cfg ...ConsoleConfig) *ServiceBuilder {
	if len(cfg) > 1 {
		return b.fail(errors.New("WithConsole: at most one ConsoleConfig"))
	}
	c := ConsoleConfig{}
	if len(cfg) == 1 {
		c = cfg[0]
	}
	c.Prefix = strings.TrimRight(cmp.Or(c.Prefix, defaultConsolePrefix), "/")
	if !strings.HasPrefix(c.Prefix, "/") {
		return b.fail(errors.New("WithConsole: Prefix must start with a slash and not be the root, like /console"))
	}
	b.console = &c
	return b
}
