package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/chapkit-go/chapkit/job"
)

// Monitoring is the resolved metrics configuration.
type Monitoring struct {
	// Path of the metrics route.
	Path string
	// ServiceName is attached to every metric as the service_name label.
	ServiceName string
}

// UnmatchedRoute is the http_route label of requests that matched no
// route (404s, and requests refused before routing, such as 401s), so
// raw paths never become label values.
const UnmatchedRoute = "unmatched"

// metrics is an app's registry and instruments. It is safe for concurrent use.
type metrics struct {
	prefix   string
	reg      *prometheus.Registry
	handler  http.Handler
	duration *prometheus.HistogramVec
	active   *prometheus.GaugeVec

	jobsSubmitted *prometheus.CounterVec
	jobsFinished  *prometheus.CounterVec
	jobDuration   *prometheus.HistogramVec
	// Schedules and retries: ticks fired and skipped, retries started.
	ticksFired, ticksSkipped, retries *prometheus.CounterVec
}

func newMetrics(s *Server, cfg Monitoring) *metrics {
	m := &metrics{prefix: cfg.Path, reg: prometheus.NewRegistry()}
	labels := prometheus.Labels{"service_name": cfg.ServiceName}
	if s.d.NodeID != "" {
		// Replicas of one service share a service_name; the node label
		// tells their series apart.
		labels["node"] = s.d.NodeID
	}
	r := prometheus.WrapRegistererWith(labels, m.reg)
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "http_server_request_duration_seconds",
		Help:    "Duration of HTTP server requests.",
		Buckets: prometheus.DefBuckets,
	}, []string{"http_method", "http_route", "http_status_code"})
	m.active = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "http_server_active_requests",
		Help: "Number of HTTP server requests in flight (event streams included).",
	}, []string{"http_method", "http_route"})
	m.jobsSubmitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chapkit_jobs_submitted_total",
		Help: "Jobs queued to run (by $execute, a schedule tick or a retry), by kind.",
	}, []string{"kind"})
	m.jobsFinished = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chapkit_jobs_finished_total",
		Help: "Jobs that reached a final status, by kind and status.",
	}, []string{"kind", "status"})
	m.jobDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "chapkit_job_duration_seconds",
		Help:    "Time from start to finish of jobs that ran, by kind and final status.",
		Buckets: []float64{.01, .05, .1, .5, 1, 5, 10, 30, 60, 300, 900, 3600},
	}, []string{"kind", "status"})
	m.ticksFired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chapkit_schedule_ticks_fired_total",
		Help: "Ticks of task schedules that started an execution, by kind.",
	}, []string{"kind"})
	m.ticksSkipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chapkit_schedule_ticks_skipped_total",
		Help: "Ticks of task schedules skipped (an execution of the task still pending or running, missed, or schedule changed), by kind.",
	}, []string{"kind"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "chapkit_job_retries_total",
		Help: "Retry attempts started after a failed execution, by kind.",
	}, []string{"kind"})
	counts := func(pick func(p, r int) int) func() float64 {
		return func() float64 {
			// Read when scraped; the scheduler exists once Start returned.
			if sched := s.sched(); sched != nil {
				p, r := sched.Counts()
				return float64(pick(p, r))
			}
			return 0
		}
	}
	abandoned := func(pick func(now int, total int64) float64) func() float64 {
		return func() float64 {
			if sched := s.sched(); sched != nil {
				return pick(sched.Abandoned())
			}
			return 0
		}
	}
	r.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "chapkit_job_calls_abandoned_total",
			Help: "Calls that ignored their job's cancellation or timeout past the grace period and were abandoned, since start."},
			abandoned(func(_ int, total int64) float64 { return float64(total) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chapkit_job_calls_abandoned",
			Help: "Abandoned calls that have not returned yet (each still holds a goroutine)."},
			abandoned(func(now int, _ int64) float64 { return float64(now) })),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.duration, m.active, m.jobsSubmitted, m.jobsFinished, m.jobDuration, m.ticksFired, m.ticksSkipped, m.retries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chapkit_jobs_pending", Help: "Jobs waiting for a slot."},
			counts(func(p, _ int) int { return p })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "chapkit_jobs_running", Help: "Jobs running."},
			counts(func(_, r int) int { return r })),
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
	return m
}

// metricsRoutes is the table of the metrics route.
func (s *Server) metricsRoutes() []route {
	return []route{
		{http.MethodGet, s.metrics.prefix, s.metrics.serve, always, familyNone, opDoc{tag: "Observability", summary: "Prometheus metrics", status: 200,
			contentType: "text/plain", result: fixed(map[string]any{"type": "string"})}},
	}
}

func (m *metrics) serve(c echo.Context) error {
	m.handler.ServeHTTP(&textContentType{ResponseWriter: c.Response()}, c.Request())
	return nil
}

// textContentType sends the classic text format's content type as
// "text/plain; version=0.0.4; charset=utf-8", exactly: promhttp adds an
// "escaping" parameter that some clients do not expect.
type textContentType struct{ http.ResponseWriter }

func (w *textContentType) fix() {
	h := w.Header()
	if ct := h.Get("Content-Type"); strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		h.Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	}
}

func (w *textContentType) WriteHeader(code int) {
	w.fix()
	w.ResponseWriter.WriteHeader(code)
}

func (w *textContentType) Write(b []byte) (int, error) {
	w.fix()
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *textContentType) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// knownMethods bounds the http_method label: anything else is _OTHER.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

func methodLabel(m string) string {
	if knownMethods[m] {
		return m
	}
	return "_OTHER"
}

func routeLabel(c echo.Context) string {
	if p := c.Path(); p != "" {
		return p
	}
	return UnmatchedRoute
}

// measure is the outermost middleware: it times the whole request,
// refusals before routing included, and labels it once routing is done.
func (m *metrics) measure(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		status := c.Response().Status
		m.duration.WithLabelValues(methodLabel(c.Request().Method), routeLabel(c), strconv.Itoa(status)).
			Observe(time.Since(start).Seconds())
		return nil
	}
}

// countActive keeps http_server_active_requests; it runs after routing,
// where the route is known.
func (m *metrics) countActive(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		g := m.active.WithLabelValues(methodLabel(c.Request().Method), routeLabel(c))
		g.Inc()
		defer g.Dec()
		return next(c)
	}
}

// JobChanged implements job.Observer: it counts the jobs queued to run,
// final statuses, times the jobs that ran, and counts the scheduled jobs
// that fired (ticks) or started (retries). A job counts as submitted when
// it becomes pending: at once for $execute, when its time comes for a
// schedule tick or a retry, so a waiting row that never runs is not
// counted.
func (m *metrics) JobChanged(j *job.Job, from job.Status) {
	if j.Status == job.StatusPending && (from == "" || from == job.StatusScheduled) {
		m.jobsSubmitted.WithLabelValues(j.Kind).Inc()
	}
	if from == job.StatusScheduled && j.Status == job.StatusPending && j.Trigger != nil {
		switch *j.Trigger {
		case job.TriggerSchedule:
			m.ticksFired.WithLabelValues(j.Kind).Inc()
		case job.TriggerRetry:
			m.retries.WithLabelValues(j.Kind).Inc()
		}
	}
	if from == "" || !j.Status.Terminal() || from.Terminal() {
		return
	}
	m.jobsFinished.WithLabelValues(j.Kind, string(j.Status)).Inc()
	if j.StartedAt != nil && j.FinishedAt != nil {
		m.jobDuration.WithLabelValues(j.Kind, string(j.Status)).Observe(j.FinishedAt.Sub(*j.StartedAt).Seconds())
	}
}

// JobSkipped implements job.SkipObserver: it counts the schedule ticks
// dropped without running.
func (m *metrics) JobSkipped(j *job.Job, _ string) {
	m.ticksSkipped.WithLabelValues(j.Kind).Inc()
}
