package httpapi

import (
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// nodeRecord is the wire shape of a live node: the processes sharing the
// database, which one leads, and how many jobs each runs.
type nodeRecord struct {
	ID          string `json:"id"`
	Hostname    string `json:"hostname"`
	PID         int    `json:"pid"`
	StartedAt   string `json:"started_at"`
	HeartbeatAt string `json:"heartbeat_at"`
	Leader      bool   `json:"leader"`
	Running     int    `json:"running"`
}

// nodeRoutes is the table of GET /api/v1/system/nodes, mounted with the
// system routes when the app runs jobs.
func (s *Server) nodeRoutes() []route {
	item := map[string]any{"type": "object", "required": []string{"id", "hostname", "pid", "started_at", "heartbeat_at", "leader", "running"},
		"properties": map[string]any{
			"id": map[string]any{"type": "string"}, "hostname": map[string]any{"type": "string"}, "pid": map[string]any{"type": "integer"},
			"started_at": map[string]any{"type": "string", "format": "date-time"}, "heartbeat_at": map[string]any{"type": "string", "format": "date-time"},
			"leader": map[string]any{"type": "boolean"}, "running": map[string]any{"type": "integer"},
		}}
	return []route{
		{http.MethodGet, "/nodes", s.listNodes, always, familyNone, opDoc{tag: "Service", summary: "Live nodes sharing the database", status: 200, contentType: jsonCT,
			result: fixed(map[string]any{"type": "array", "items": item})}},
	}
}

func (s *Server) listNodes(c echo.Context) error {
	nodes, err := s.sched().Nodes(c.Request().Context())
	if err != nil {
		return problem.Database("httpapi.listNodes", err)
	}
	out := make([]nodeRecord, len(nodes))
	for i, n := range nodes {
		out[i] = nodeRecord{ID: n.ID, Hostname: n.Hostname, PID: n.PID, StartedAt: wire.FormatTime(n.StartedAt),
			HeartbeatAt: wire.FormatTime(n.HeartbeatAt), Leader: n.Leader, Running: n.Running}
	}
	return c.JSON(http.StatusOK, out)
}
