package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/jsonsafe"
	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
)

// shellSnapshot is the task as a shell artifact records it (docs/jobs.md).
type shellSnapshot struct {
	ID        string `json:"id"`
	Command   string `json:"command"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

// ShellResult is the data of a shell task's artifact.
type ShellResult struct {
	Task            shellSnapshot `json:"task"`
	Stdout          string        `json:"stdout"`
	Stderr          string        `json:"stderr"`
	ExitCode        int           `json:"exit_code"`
	StdoutTruncated bool          `json:"stdout_truncated,omitempty"`
	StderrTruncated bool          `json:"stderr_truncated,omitempty"`
	TimedOut        bool          `json:"timed_out,omitempty"`
}

// functionSnapshot is the task as a function artifact records it (docs/jobs.md).
type functionSnapshot struct {
	ID         string          `json:"id"`
	Command    string          `json:"command"`
	TaskType   string          `json:"task_type"`
	Parameters json.RawMessage `json:"parameters"`
	CreatedAt  string          `json:"created_at"`
	UpdatedAt  string          `json:"updated_at"`
}

// FunctionResult is the data of a function task's artifact.
type FunctionResult struct {
	Task   functionSnapshot    `json:"task"`
	Result json.RawMessage     `json:"result"`
	Error  *registry.CallError `json:"error"`
}

// artifactResult stores an execution's artifact in the transaction that
// completes its job.
type artifactResult struct {
	store artifactInserter
	data  json.RawMessage
}

func (r artifactResult) CommitJob(tx *gorm.DB) (string, error) { return r.store.Insert(tx, r.data) }

// RunJob is the job handler of task executions ([JobKind]). It re-reads the
// task (the snapshot is taken now, at run time, not at submission), runs it and returns the
// artifact to store with the job's completion.
func (m *Manager) RunJob(ctx context.Context, run *job.Run) (any, error) {
	if m.cfg.Artifacts == nil {
		return nil, registry.NewError("RuntimeError", "ArtifactManager instance required for task execution")
	}
	var args jobArgs
	if err := json.Unmarshal(run.Job.Args, &args); err != nil {
		return nil, fmt.Errorf("decode task job arguments: %w", err)
	}
	t, err := m.find(ctx, args.TaskID)
	if err != nil {
		return nil, err
	}
	if t == nil {
		return nil, registry.NewError("ValueError", fmt.Sprintf("Task %s not found", args.TaskID))
	}
	timeout := m.cfg.DefaultTimeout
	if t.TimeoutSeconds != nil {
		timeout = time.Duration(*t.TimeoutSeconds) * time.Second
	}
	var data any
	if args.TaskType == TypePython {
		data, err = m.runFunction(ctx, t, timeout)
	} else {
		data, err = m.runShell(ctx, run, t, timeout)
	}
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode artifact: %w", err)
	}
	return artifactResult{store: m.cfg.Artifacts, data: raw}, nil
}

func (m *Manager) runShell(ctx context.Context, run *job.Run, t *Task, timeout time.Duration) (*ShellResult, error) {
	res, err := shell.Run(ctx, t.Command, shell.Options{
		MaxOutput: m.cfg.MaxOutput,
		Timeout:   timeout,
		OnStart:   func(pgid int) error { return run.SetProcessGroup(ctx, pgid) },
	})
	if err != nil {
		return nil, err
	}
	return &ShellResult{
		Task:     shellSnapshot{ID: t.ID, Command: t.Command, CreatedAt: wire.FormatTime(t.CreatedAt), UpdatedAt: wire.FormatTime(t.UpdatedAt)},
		Stdout:   res.Stdout,
		Stderr:   res.Stderr,
		ExitCode: res.ExitCode, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated, TimedOut: res.TimedOut,
	}, nil
}

func (m *Manager) runFunction(ctx context.Context, t *Task, timeout time.Duration) (*FunctionResult, error) {
	var fn *registry.Func
	if m.cfg.Registry != nil {
		fn, _ = m.cfg.Registry.Lookup(t.Command)
	}
	if fn == nil {
		return nil, registry.NewError("ValueError", fmt.Sprintf("Python function '%s' not found in registry", t.Command))
	}
	callCtx := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeoutCause(ctx, timeout, errTimeout)
		defer cancel()
	}
	result, callErr := fn.Call(callCtx, t.Parameters, m.cfg.Container)
	if ctx.Err() != nil {
		// Cancelled, deleted or interrupted: the scheduler records the
		// outcome and nothing of this call is stored.
		return nil, context.Cause(ctx)
	}
	out := &FunctionResult{
		Task: functionSnapshot{ID: t.ID, Command: t.Command, TaskType: t.TaskType, Parameters: nullIfEmpty(t.Parameters),
			CreatedAt: wire.FormatTime(t.CreatedAt), UpdatedAt: wire.FormatTime(t.UpdatedAt)},
		Result: json.RawMessage("null"),
	}
	switch {
	case errors.Is(context.Cause(callCtx), errTimeout) && (callErr != nil || callCtx.Err() != nil):
		trace := ""
		if callErr != nil {
			trace = callErr.Traceback
		}
		out.Error = &registry.CallError{Type: "TimeoutError", Message: fmt.Sprintf("Task timed out after %s", timeout), Traceback: trace}
	case callErr != nil:
		out.Error = callErr
	default:
		out.Result = jsonsafe.MarshalShort(result)
	}
	return out, nil
}

var errTimeout = errors.New("task timed out")
