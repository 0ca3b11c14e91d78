package chapkit

import (
	"errors"

	"github.com/chapkit-go/chapkit/internal/httpapi"
)

// MonitoringConfig configures the Prometheus metrics.
type MonitoringConfig struct {
	// Prefix is the path of the metrics route; default /metrics.
	Prefix string
	// ServiceName is attached to every metric as the service_name label;
	// default the service's DisplayName.
	ServiceName string
}

// UnmatchedRoute is the http_route label of requests that matched no
// route (404s, and requests refused before routing, such as 401s), so
// raw paths never become label values.
const UnmatchedRoute = httpapi.UnmatchedRoute

// WithMonitoring mounts GET /metrics (or cfg.Prefix) in the Prometheus text
// format: Go runtime and process collectors, HTTP server metrics
// (http_server_request_duration_seconds, http_server_active_requests) and
// job metrics (chapkit_jobs_submitted_total, chapkit_jobs_finished_total,
// chapkit_job_duration_seconds, chapkit_jobs_pending, chapkit_jobs_running).
// Every app has its own registry, so several apps in one process never
// collide.
func (b *ServiceBuilder) WithMonitoring(cfg ...MonitoringConfig) *ServiceBuilder {
	c := MonitoringConfig{}
	if len(cfg) > 1 {
		return b.fail(errors.New("WithMonitoring: at most one MonitoringConfig"))
	}
	if len(cfg) == 1 {
		c = cfg[0]
	}
	b.monitoring = &c
	return b
}
