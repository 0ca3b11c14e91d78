package main

import (
	"encoding/json"
	"math"
	"slices"
	"time"
)

// Spec is one run of one cell: a workload against one system in one
// configuration. The parent process hands it to a child as JSON.
type Spec struct {
	Workload string `json:"workload"` // w1, w2, w3, w4, w4n, w6
	// Engine is "postgres" for the PostgreSQL matrix; empty is SQLite.
	Engine      string  `json:"engine,omitempty"`
	System      string  `json:"system"`      // ours, river, goqite, exec
	Config      string  `json:"config"`      // documented, tuned, defaults, rescue
	Synchronous string  `json:"synchronous"` // SQLite's; "" on PostgreSQL
	Concurrency int     `json:"concurrency,omitempty"`
	Jobs        int     `json:"jobs,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	RateLabel   string  `json:"rate_label,omitempty"`
	Seconds     float64 `json:"seconds,omitempty"`
	CapSeconds  float64 `json:"cap_seconds,omitempty"`
	Rep         int     `json:"rep"`
	DB          string  `json:"db"`
	// RunLog is the file the W4 worker appends its start and done lines to.
	RunLog string `json:"run_log,omitempty"`
	// Insert makes a W4 worker insert the jobs before it starts working.
	Insert bool `json:"insert,omitempty"`
	// Profile, when set, is the file a CPU profile of the run is written to.
	Profile string `json:"profile,omitempty"`
}

const enginePG = "postgres"

// matrix names the matrix a run belongs to: the SQLite synchronous mode,
// or "postgres".
func (s Spec) matrix() string {
	if s.Engine == enginePG {
		return enginePG
	}
	return s.Synchronous
}

// cell is the key that the repetitions of one measurement share.
func (s Spec) cell() string {
	b, _ := json.Marshal(struct {
		W, S, C, Sy, RL, E string
		N, J               int
		R                  float64
	}{s.Workload, s.System, s.Config, s.Synchronous, s.RateLabel, s.Engine, s.Concurrency, s.Jobs, s.Rate})
	return string(b)
}

// Result is what one run measured. Metrics is keyed by metric name.
type Result struct {
	Spec    Spec               `json:"spec"`
	Metrics map[string]float64 `json:"metrics"`
	Error   string             `json:"error,omitempty"`
}

// payload is the argument of every benchmark job.
type payload struct {
	Seq int   `json:"seq"`
	Enq int64 `json:"enq"` // scheduled enqueue time, Unix nanoseconds
	// SleepMS makes the job sleep (W4); zero is a no-op job.
	SleepMS int `json:"sleep_ms,omitempty"`
	// Shell makes the job run the W3 command.
	Shell bool `json:"shell,omitempty"`
}

// latencies collects durations and reports percentiles in milliseconds.
type latencies []time.Duration

// recorded returns the latencies of the jobs that have one (a zero entry
// is a job never observed).
func recorded(ds []time.Duration) latencies {
	var l latencies
	for _, d := range ds {
		if d > 0 {
			l = append(l, d)
		}
	}
	return l
}

func (l latencies) pct(p float64) float64 {
	if len(l) == 0 {
		return math.NaN()
	}
	s := slices.Clone(l)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	i = max(0, min(i, len(s)-1))
	return float64(s[i]) / float64(time.Millisecond)
}

func (l latencies) into(m map[string]float64, prefix string) {
	m[prefix+"_p50_ms"] = l.pct(50)
	m[prefix+"_p95_ms"] = l.pct(95)
	m[prefix+"_p99_ms"] = l.pct(99)
}

// summary is the median, minimum and maximum over repetitions.
type summary struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func summarize(xs []float64) summary {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return summary{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return summary{Median: med, Min: v[0], Max: v[len(v)-1], N: len(v)}
}
