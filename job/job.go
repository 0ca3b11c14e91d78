// Package job is chapkit's durable job scheduler: job rows live in the
// database (SQLite or PostgreSQL), are claimed oldest first by the nodes
// sharing it and run on goroutines behind each node's concurrency limit.
// Nodes are woken by their own submissions and by notifications from the
// others (PostgreSQL), with a slow poll as the fallback, and the jobs of a
// node that died are rescued (docs/scaling-out.md).
package job

import (
	"encoding/json"
	"time"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// InterruptedError is the error text of a job whose service stopped under it.
const InterruptedError = "interrupted: the service stopped while the job was running"

// Job is one job row (table jobs). Values returned by the scheduler are
// copies: changing them changes nothing stored.
//
// Every change of status writes a new version of the row into each index
// whose condition it meets (a status change cannot be a heap-only update),
// so the table keeps few indexes: (status, submitted_at, id) serves the
// claim in its own order, and the indexes of columns most rows leave null
// (series, retry_of) hold only the rows that set them.
type Job struct {
	ID string `gorm:"primaryKey;type:text;index:idx_jobs_status_submitted_id,priority:3"`
	// Kind names the handler that runs the job; Args are its JSON arguments.
	Kind           string          `gorm:"type:text;not null"`
	Args           json.RawMessage `gorm:"type:json"`
	Status         Status          `gorm:"type:text;not null;index:idx_jobs_status_submitted_id,priority:1"`
	SubmittedAt    time.Time       `gorm:"not null;index:idx_jobs_status_submitted_id,priority:2;index"`
	StartedAt      *time.Time
	FinishedAt     *time.Time
	Error          *string `gorm:"type:text"`
	ErrorTraceback *string `gorm:"type:text"`
	ArtifactID     *string `gorm:"type:text"`
	// PGID is the process group of a running shell job, so a restart can
	// kill what a dead service left behind (docs/jobs.md, recovery).
	PGID    *int `gorm:"column:pgid"`
	Attempt int  `gorm:"not null;default:1"`
	// Node is the id of the node that claimed the job (see [Node]); nil
	// while it waits.
	Node *string `gorm:"type:text;index"`
	// RunAt is when a scheduled job becomes due; nil for the others.
	RunAt *time.Time `gorm:"uniqueIndex:idx_jobs_series_run_at_set,priority:2,where:series IS NOT NULL"`
	// Series names the schedule a job was planned for (for task jobs, the
	// task id). The unique key (series, run_at) records each tick once, so
	// no tick can be planned, and so run, twice.
	Series *string `gorm:"type:text;uniqueIndex:idx_jobs_series_run_at_set,priority:1,where:series IS NOT NULL"`
	// Trigger says what created the job: TriggerAPI, TriggerSchedule or
	// TriggerRetry; nil for jobs stored by earlier releases.
	Trigger *string `gorm:"type:text"`
	// RetryOf is the id of the first job of a retry chain; nil for a first
	// attempt.
	RetryOf *string `gorm:"type:text;index:idx_jobs_retry_of_set,where:retry_of IS NOT NULL"`
	// RequestID is the X-Request-ID of the request that submitted the job,
	// and TraceParent the W3C traceparent of its span (docs/tracing.md);
	// nil when there was none. Neither is sent on the wire: they carry the
	// request's identity into the execution, across restarts.
	RequestID   *string `gorm:"type:text"`
	TraceParent *string `gorm:"type:text"`
}

// What created a job (the job record's "trigger").
const (
	TriggerAPI      = "api"
	TriggerSchedule = "schedule"
	TriggerRetry    = "retry"
)

// TableName pins the table name.
func (Job) TableName() string { return "jobs" }

// Record is the wire shape of a job (docs/http-api.md): all eight keys are
// always present, nulls included; attempt where interrupted jobs are
// retried or the job belongs to a retry chain; node, trigger and retry_of
// only when set.
type Record struct {
	ID             string  `json:"id"`
	Status         Status  `json:"status"`
	SubmittedAt    *string `json:"submitted_at"`
	StartedAt      *string `json:"started_at"`
	FinishedAt     *string `json:"finished_at"`
	Error          *string `json:"error"`
	ErrorTraceback *string `json:"error_traceback"`
	ArtifactID     *string `json:"artifact_id"`
	Attempt        int     `json:"attempt,omitempty"`
	// Node is the node that runs or ran the job; absent while it waits.
	Node *string `json:"node,omitempty"`
	// Trigger is "api", "schedule" or "retry" (absent for jobs of
	// earlier releases); RetryOf is the first job of a retry chain.
	Trigger *string `json:"trigger,omitempty"`
	RetryOf *string `json:"retry_of,omitempty"`
}

// Record renders j for the wire. withAttempt adds the attempt member.
func (j *Job) Record(withAttempt bool) Record {
	r := Record{
		ID:             j.ID,
		Status:         j.Status,
		SubmittedAt:    wire.FormatTimePtr(&j.SubmittedAt),
		StartedAt:      wire.FormatTimePtr(j.StartedAt),
		FinishedAt:     wire.FormatTimePtr(j.FinishedAt),
		Error:          j.Error,
		ErrorTraceback: j.ErrorTraceback,
		ArtifactID:     j.ArtifactID,
		Node:           j.Node,
		Trigger:        j.Trigger,
		RetryOf:        j.RetryOf,
	}
	if withAttempt || j.RetryOf != nil {
		r.Attempt = j.Attempt
	}
	return r
}

func (j *Job) clone() *Job {
	c := *j
	return &c
}
