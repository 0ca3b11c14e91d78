package httpapi

import (
	"bytes"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/console"
)

// infoPath is the path of the service info, which the console shows.
const infoPath = "/api/v1/info"

// Console is where the web console is mounted.
type Console struct {
	// Prefix is the console's path, such as /console.
	Prefix string
}

// consoleConfig is the body of GET {prefix}/config.json: what the console
// needs to know to show only what the service allows. Paths are absent
// (null) for resources the service does not mount.
type consoleConfig struct {
	Title       string             `json:"title"`
	Version     string             `json:"version"`
	API         consoleAPI         `json:"api"`
	Permissions consolePermissions `json:"permissions"`
	// Auth is set when requests need an API key.
	Auth *consoleAuth `json:"auth"`
}

type consoleAPI struct {
	Info      string  `json:"info"`
	Health    *string `json:"health"`
	Tasks     *string `json:"tasks"`
	Jobs      *string `json:"jobs"`
	Artifacts *string `json:"artifacts"`
	Metrics   *string `json:"metrics"`
	// Nodes lists the nodes sharing the database (system routes with jobs).
	Nodes *string `json:"nodes"`
}

type consolePermissions struct {
	Tasks     consolePerm `json:"tasks"`
	Artifacts consolePerm `json:"artifacts"`
}

type consolePerm struct {
	Create bool `json:"create"`
	Read   bool `json:"read"`
	Update bool `json:"update"`
	Delete bool `json:"delete"`
}

type consoleAuth struct {
	Header string `json:"header"`
}

func permOf(r *Resource) consolePerm {
	if r == nil {
		return consolePerm{}
	}
	p := r.Permissions
	return consolePerm{Create: p.Create, Read: p.Read, Update: p.Update, Delete: p.Delete}
}

// consolePaths are the console's own paths, which are served without an
// API key so the console can load and ask for one.
func (s *Server) consolePaths() []string {
	c := s.d.Console
	if c == nil {
		return nil
	}
	out := []string{c.Prefix, c.Prefix + "/config.json"}
	for _, name := range console.Names() {
		out = append(out, c.Prefix+"/assets/"+name)
	}
	return out
}

// consoleRoutes is the table of the console's routes.
func (s *Server) consoleRoutes() []route {
	const tag = "Console"
	str := fixed(map[string]any{"type": "string"})
	return []route{
		{http.MethodGet, "", s.consolePage, always, familyNone,
			opDoc{tag: tag, summary: "The web console (docs/console.md)", status: 200, contentType: "text/html", result: str}},
		{http.MethodGet, "/config.json", s.consoleConfig, always, familyNone, opDoc{tag: tag,
			summary: "What the console may show: API paths, task and artifact permissions, whether an API key is needed", status: 200, contentType: jsonCT,
			result: fixed(map[string]any{"type": "object", "properties": map[string]any{
				"title": map[string]any{"type": "string"}, "version": map[string]any{"type": "string"},
				"api": map[string]any{"type": "object"}, "permissions": map[string]any{"type": "object"},
				"auth": map[string]any{"anyOf": []any{map[string]any{"type": "object"}, map[string]any{"type": "null"}}},
			}})}},
		{http.MethodGet, "/assets/:asset", consoleAsset, always, familyNone, opDoc{tag: tag, summary: "Script and style of the console", status: 200,
			contentType: "application/octet-stream", result: str, errs: []errDoc{{http.StatusNotFound, shapeDetail, "No such asset", nil}}}},
	}
}

func (s *Server) consolePage(c echo.Context) error {
	var buf bytes.Buffer
	if err := console.Render(&buf, console.Page{Title: s.d.Title, Base: s.d.Console.Prefix + "/"}); err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-cache")
	return c.HTMLBlob(http.StatusOK, buf.Bytes())
}

func (s *Server) consoleConfig(c echo.Context) error {
	d := s.d
	cfg := consoleConfig{Title: d.Title, Version: d.Version, API: consoleAPI{Info: infoPath}}
	ptr := func(s string) *string { return &s }
	if d.Health != nil {
		cfg.API.Health = ptr(d.Health.Prefix)
	}
	if d.Tasks != nil {
		cfg.API.Tasks = ptr(d.Tasks.Prefix)
	}
	if d.Jobs != nil {
		cfg.API.Jobs = ptr(d.Jobs.Prefix)
	}
	if d.Artifacts != nil {
		cfg.API.Artifacts = ptr(d.Artifacts.Prefix)
	}
	if d.Monitoring != nil {
		cfg.API.Metrics = ptr(d.Monitoring.Path)
	}
	if d.System && d.Jobs != nil {
		cfg.API.Nodes = ptr(systemPrefix + "/nodes")
	}
	cfg.Permissions = consolePermissions{Tasks: permOf(d.Tasks), Artifacts: permOf(d.Artifacts)}
	if d.Auth != nil {
		cfg.Auth = &consoleAuth{Header: d.Auth.Header}
	}
	return c.JSON(http.StatusOK, cfg)
}

// consoleAsset serves one file of the embedded bundle. The names carry no
// content hash, so caches revalidate.
var consoleAsset = embeddedAsset(console.Assets, "no-cache")
