// Package chapkit turns a Go program into a task-execution service: task
// templates (shell commands or registered Go functions) stored in a
// database, executed as durable jobs under bounded concurrency, with every
// result kept as an immutable artifact, all served over a REST API that
// chapkit clients already speak.
//
// # Quick start
//
//	app, err := chapkit.NewServiceBuilder(chapkit.ServiceInfo{DisplayName: "Demo"}).
//		WithDatabase("demo.db").
//		WithHealth().
//		WithArtifacts(artifact.Hierarchy{Name: "task_executions", LevelLabels: map[int]string{0: "execution"}}).
//		WithJobs(chapkit.JobsConfig{MaxConcurrency: 3}).
//		WithTasks(nil).
//		Build()
//	if err != nil { ... }
//	err = app.Run(ctx, ":8000") // serves until ctx is done, then drains
//
// # Tasks
//
// A task is a template: a shell command (task_type "shell") or the name of
// a registered function (task_type "python", kept for chapkit clients;
// "function" is accepted as an alias). POST /api/v1/tasks/{id}/$execute
// answers 202 with a job id and runs the task in the background.
//
// # Jobs
//
// Job rows live in the database: they survive restarts, pending ones run
// after the next start, and running ones are recorded as interrupted (their
// process groups killed). GET /api/v1/jobs/{id}/$stream pushes every
// change as a Server-Sent Event.
//
// # Artifacts
//
// Every execution stores one artifact with a snapshot of the task and its
// output (stdout, stderr, exit code) or its function result or error. The
// artifact and the job's completion are written in one transaction.
//
// # Registry and injection
//
// Go functions are registered with typed generics (registry.Register and
// registry.RegisterWith): parameters are decoded from the task's JSON
// parameters into a struct, and framework values (*gorm.DB bound to the
// job, *artifact.Manager, *job.Scheduler, your own types given to
// [Provide]) are injected by type. Build fails when a function needs a type
// nobody provides.
//
// # Errors
//
// Every package returns [*Error] (package problem); one HTTP error handler
// renders it in the body family of the route (docs/http-api.md).
//
// # Shutdown
//
// [App.Shutdown] drains: $execute answers 503, SSE streams close, running
// jobs get until the drain deadline, the rest stay pending for the next
// start.
package chapkit

import (
	"encoding/json"
	"strings"

	"github.com/chapkit-go/chapkit/problem"
)

// Error is the error type of every chapkit package.
type Error = problem.Error

// ServiceInfo describes the service at GET /api/v1/info.
//
// The body always has id, display_name and version; summary,
// description, contact and license_info appear only when set, so that
// current chapkit clients (which reject them as null) and older ones
// (which ignore unknown or missing optional keys) both parse it.
type ServiceInfo struct {
	// ID identifies the service to clients that probe it (a slug such as
	// "task-execution-service"). It defaults to [Slug] of DisplayName.
	ID string
	// DisplayName is required.
	DisplayName string
	// Version defaults to "1.0.0".
	Version     string
	Summary     string
	Description string // defaults to Summary
	Contact     map[string]string
	LicenseInfo map[string]string
	// Extra members are added to the info object as they are; keys that
	// name the members above are ignored.
	Extra map[string]any
}

// Slug turns a display name into a service id: ASCII letters are
// lowercased, ASCII letters and digits are kept, every run of any other
// characters (spaces, punctuation, non-ASCII letters) becomes one "-",
// and leading and trailing "-" are dropped. A name with no ASCII letter
// or digit gives "service". Examples: "Task Execution Service" →
// "task-execution-service", "  ML: v2 (beta) " → "ml-v2-beta".
func Slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range name {
		switch {
		case r >= 'A' && r <= 'Z':
			r += 'a' - 'A'
			fallthrough
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
		default:
			dash = true
		}
	}
	if b.Len() == 0 {
		return "service"
	}
	return b.String()
}

// MarshalJSON renders the info: id, display_name and version always,
// the optional members only when set.
func (s ServiceInfo) MarshalJSON() ([]byte, error) {
	out := map[string]any{}
	for k, v := range s.Extra {
		out[k] = v
	}
	id := s.ID
	if id == "" {
		id = Slug(s.DisplayName)
	}
	version := s.Version
	if version == "" {
		version = "1.0.0"
	}
	desc := s.Description
	if desc == "" {
		desc = s.Summary
	}
	out["id"] = id
	out["display_name"] = s.DisplayName
	out["version"] = version
	for k, v := range map[string]string{"summary": s.Summary, "description": desc} {
		if v != "" {
			out[k] = v
		} else {
			delete(out, k)
		}
	}
	for k, v := range map[string]map[string]string{"contact": s.Contact, "license_info": s.LicenseInfo} {
		if v != nil {
			out[k] = v
		} else {
			delete(out, k)
		}
	}
	return json.Marshal(out)
}
