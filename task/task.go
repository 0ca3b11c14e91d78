// Package task manages task templates (shell commands or registered Go
// functions) and runs their executions as jobs whose results are stored as
// artifacts.
package task

import (
	"encoding/json"
	"time"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// Task types as stored and sent. TypeFunction is accepted on input as an
// alias and stored as TypePython, the name chapkit clients know.
const (
	TypeShell    = "shell"
	TypePython   = "python"
	TypeFunction = "function"
)

// MaxTimeoutSeconds is the largest timeout_seconds a task accepts: 30 days,
// in seconds. Larger values are refused with a 422 naming the field and
// this maximum, rather than stored: a count of seconds near the top of the
// integer range overflows a [time.Duration] (nanoseconds, at most about
// 292 years) and would kill the job at once or never.
const MaxTimeoutSeconds = 30 * 24 * 60 * 60

// Task is one task template row (table tasks).
type Task struct {
	ID         string          `gorm:"primaryKey;type:text"`
	Command    string          `gorm:"type:text;not null"`
	TaskType   string          `gorm:"type:text;not null"`
	Parameters json.RawMessage `gorm:"type:json"`
	// Enabled has no column default on purpose: GORM skips zero values on
	// insert when a default exists, which would store false as true.
	Enabled        bool `gorm:"not null"`
	TimeoutSeconds *int
	// Options are the schedule and retry fields (see [Options]).
	Options
	CreatedAt time.Time `gorm:"not null;autoCreateTime:false"`
	UpdatedAt time.Time `gorm:"not null;autoUpdateTime:false"`
}

// Timeout is the task's own timeout as a duration, 0 when it has none.
// A value stored above [MaxTimeoutSeconds] (by an older version, or
// written to the database directly) counts as MaxTimeoutSeconds, so the
// conversion never overflows into an early kill or into no timeout at
// all; a value of 0 or less, which input validation refuses, counts as
// none.
func (t *Task) Timeout() time.Duration {
	if t.TimeoutSeconds == nil || *t.TimeoutSeconds <= 0 {
		return 0
	}
	return time.Duration(min(*t.TimeoutSeconds, MaxTimeoutSeconds)) * time.Second
}

// TableName pins the table name shared with chapkit's schema.
func (Task) TableName() string { return "tasks" }

// Out is the wire shape of a task (docs/http-api.md).
type Out struct {
	ID             string          `json:"id"`
	CreatedAt      string          `json:"created_at"`
	UpdatedAt      string          `json:"updated_at"`
	Command        string          `json:"command"`
	TaskType       string          `json:"task_type"`
	Parameters     json.RawMessage `json:"parameters"`
	Enabled        bool            `json:"enabled"`
	TimeoutSeconds *int            `json:"timeout_seconds"`
	// The schedule members are present only on a task with a schedule,
	// and the retry members only on one with retry fields, so a task
	// that uses neither renders exactly as before they existed.
	Schedule         *string `json:"schedule,omitempty"`
	ScheduleTimezone *string `json:"schedule_timezone,omitempty"`
	ScheduleOverlap  *string `json:"schedule_overlap,omitempty"`
	ScheduleCatchUp  *bool   `json:"schedule_catch_up,omitempty"`
	// NextRunAt is the next tick (RFC 3339, UTC), null while the task is
	// disabled or its expression has no further tick.
	NextRunAt            json.RawMessage `json:"next_run_at,omitempty"`
	MaxAttempts          *int            `json:"max_attempts,omitempty"`
	RetryDelaySeconds    *float64        `json:"retry_delay_seconds,omitempty"`
	RetryMaxDelaySeconds *float64        `json:"retry_max_delay_seconds,omitempty"`
	// RetryOnExitCodes is "any", a list of exit codes, or null.
	RetryOnExitCodes json.RawMessage `json:"retry_on_exit_codes,omitempty"`
}

// Out renders t for the wire, with next_run_at as of now.
func (t *Task) Out() Out { return t.OutAt(time.Now()) }

// OutAt renders t for the wire, with the next tick after now.
func (t *Task) OutAt(now time.Time) Out {
	out := Out{
		ID: t.ID, CreatedAt: wire.FormatTime(t.CreatedAt), UpdatedAt: wire.FormatTime(t.UpdatedAt),
		Command: t.Command, TaskType: t.TaskType, Parameters: nullIfEmpty(t.Parameters),
		Enabled: t.Enabled, TimeoutSeconds: t.TimeoutSeconds,
	}
	o := &t.Options
	if o.Schedule != nil {
		utc, skip, no := "UTC", OverlapSkip, false
		out.Schedule = o.Schedule
		out.ScheduleTimezone = cmpOr(o.ScheduleTimezone, &utc)
		out.ScheduleOverlap = cmpOr(o.ScheduleOverlap, &skip)
		out.ScheduleCatchUp = cmpOr(o.ScheduleCatchUp, &no)
		out.NextRunAt = json.RawMessage("null")
		if sch := o.schedule(); sch != nil && t.Enabled {
			if next := sch.Next(now); !next.IsZero() {
				out.NextRunAt, _ = json.Marshal(wire.FormatTime(next))
			}
		}
	}
	if o.MaxAttempts != nil || o.RetryDelaySeconds != nil || o.RetryMaxDelaySeconds != nil || o.RetryOnExitCodes != nil {
		one, delay, ceiling := 1, DefaultRetryDelay, DefaultRetryMaxDelay
		out.MaxAttempts = cmpOr(o.MaxAttempts, &one)
		out.RetryDelaySeconds = cmpOr(o.RetryDelaySeconds, &delay)
		out.RetryMaxDelaySeconds = cmpOr(o.RetryMaxDelaySeconds, &ceiling)
		out.RetryOnExitCodes = json.RawMessage("null")
		if o.RetryOnExitCodes != nil {
			out.RetryOnExitCodes = json.RawMessage(*o.RetryOnExitCodes)
		}
	}
	return out
}

func cmpOr[T any](p, def *T) *T {
	if p != nil {
		return p
	}
	return def
}

func nullIfEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return nil
	}
	return raw
}

// Schema is the JSON Schema of [Out] served at GET /api/v1/tasks/$schema.
func Schema() map[string]any {
	str := map[string]any{"type": "string"}
	ts := map[string]any{"type": "string", "format": "date-time"}
	return map[string]any{
		"title": "TaskOut",
		"type":  "object",
		"properties": map[string]any{
			"id":              map[string]any{"type": "string", "title": "Id", "format": "ulid"},
			"created_at":      ts,
			"updated_at":      ts,
			"command":         str,
			"task_type":       map[string]any{"type": "string", "enum": []string{TypeShell, TypePython}},
			"parameters":      map[string]any{"anyOf": []any{map[string]any{"type": "object"}, map[string]any{"type": "null"}}},
			"enabled":         map[string]any{"type": "boolean"},
			"timeout_seconds": map[string]any{"anyOf": []any{map[string]any{"type": "integer", "exclusiveMinimum": 0, "maximum": MaxTimeoutSeconds}, map[string]any{"type": "null"}}},
			"schedule": map[string]any{"type": "string",
				"description": "cron expression (5 fields, or 6 with seconds first), @hourly/@daily/..., or @every <duration>"},
			"schedule_timezone":       map[string]any{"type": "string", "description": "IANA time zone of the schedule", "default": "UTC"},
			"schedule_overlap":        map[string]any{"type": "string", "enum": []string{OverlapSkip, OverlapAllow}, "default": OverlapSkip},
			"schedule_catch_up":       map[string]any{"type": "boolean", "default": false},
			"next_run_at":             map[string]any{"anyOf": []any{ts, map[string]any{"type": "null"}}},
			"max_attempts":            map[string]any{"type": "integer", "minimum": 1, "maximum": MaxAttemptsLimit, "default": 1},
			"retry_delay_seconds":     map[string]any{"type": "number", "minimum": 0, "maximum": MaxRetryDelaySeconds, "default": DefaultRetryDelay},
			"retry_max_delay_seconds": map[string]any{"type": "number", "minimum": 0, "maximum": MaxRetryDelaySeconds, "default": DefaultRetryMaxDelay},
			"retry_on_exit_codes": map[string]any{"anyOf": []any{map[string]any{"type": "string", "enum": []string{"any"}},
				map[string]any{"type": "array", "items": map[string]any{"type": "integer", "minimum": 1, "maximum": 255}}, map[string]any{"type": "null"}}},
		},
		"required": []string{"id", "created_at", "updated_at", "command", "task_type", "enabled"},
	}
}
