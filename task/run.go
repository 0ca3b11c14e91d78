package task

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/jsonsafe"
	"github.com/chapkit-go/chapkit/internal/livelog"
	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/internal/tracing"
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
	// Resource use (keys chapkit clients ignore). CPU times come from the
	// job's cgroup when cgroup2 containment is active, otherwise from the
	// reaped shell's rusage; see docs/process-containment.md.
	DurationSeconds  float64 `json:"duration_seconds"`
	CPUUserSeconds   float64 `json:"cpu_user_seconds"`
	CPUSystemSeconds float64 `json:"cpu_system_seconds"`
	MaxRSSBytes      int64   `json:"max_rss_bytes"`
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
	// DurationSeconds is the wall time of the call (a key chapkit clients
	// ignore).
	DurationSeconds float64 `json:"duration_seconds"`
}

// artifactResult stores an execution's artifact in the transaction that
// completes its job.
type artifactResult struct {
	store artifactInserter
	data  json.RawMessage
	// retry, when set, is the next attempt, stored in the same
	// transaction as this attempt's artifact.
	retry *job.Job
}

// Batcher lets the scheduler store the artifacts of jobs completing
// together with one statement; a result carrying the next attempt is
// stored alone.
func (r artifactResult) Batcher() job.Batcher {
	if r.retry != nil {
		return nil
	}
	return artifactBatch{r.store}
}

// artifactBatch stores the artifacts of several executions at once.
type artifactBatch struct{ store artifactInserter }

func (b artifactBatch) CommitJobs(tx *gorm.DB, results []job.BatchCommitter, ids []string) error {
	data := make([]json.RawMessage, len(results))
	for i, r := range results {
		data[i] = r.(artifactResult).data
	}
	return b.store.InsertMany(tx, ids, data)
}

func (r artifactResult) CommitJob(tx *gorm.DB) (string, error) {
	id, err := r.store.Insert(tx, r.data)
	if err != nil || r.retry == nil {
		return id, err
	}
	return id, job.InsertRetry(tx, r.retry)
}

// RunJob is the job handler of task executions ([JobKind]). It takes the
// task's snapshot at run time: a job that started with its submission uses
// the version the submission read a moment before (the two are one
// moment); any other job reads the task as it is now. It runs the task and
// returns the artifact to store with the job's completion.
func (m *Manager) RunJob(ctx context.Context, run *job.Run) (any, error) {
	if m.cfg.Artifacts == nil {
		return nil, registry.NewError("RuntimeError", "ArtifactManager instance required for task execution")
	}
	var args jobArgs
	if err := json.Unmarshal(run.Job.Args, &args); err != nil {
		return nil, fmt.Errorf("decode task job arguments: %w", err)
	}
	// A job started with its submission runs the version the submission
	// read, if this node still holds it unchanged (a change made through
	// this manager drops it); any other job reads the task now.
	var t *Task
	var err error
	if args.TaskStamp != nil && run.StartedOnSubmission() {
		t = m.cache.get(args.TaskID, *args.TaskStamp)
	}
	if t == nil {
		if t, _, err = m.current(ctx, args.TaskID); err != nil {
			return nil, err
		}
	}
	if t == nil {
		return nil, registry.NewError("ValueError", fmt.Sprintf("Task %s not found", args.TaskID))
	}
	timeout := m.cfg.DefaultTimeout
	if t.TimeoutSeconds != nil {
		timeout = t.Timeout()
	}
	var data any
	failed := false
	if args.TaskType == TypePython {
		var res *FunctionResult
		cctx, span := tracing.StartChild(ctx, "function "+t.Command, tracing.TaskIDKey.String(t.ID), tracing.FunctionKey.String(t.Command))
		res, err = m.runFunction(cctx, run, t, timeout)
		endFunctionSpan(span, res, err)
		data, failed = res, res != nil && res.Error != nil
	} else {
		var res *ShellResult
		cctx, span := tracing.StartChild(ctx, "shell", tracing.TaskIDKey.String(t.ID))
		res, err = m.runShell(cctx, run, t, timeout)
		endShellSpan(span, res, err)
		data, failed = res, res != nil && t.Options.retriesExitCode(res.ExitCode)
	}
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(data)
	if err != nil {
		// Unreachable for the shapes above: function results are checked
		// by checkEmbeddable and shell output is plain text. Say so without
		// Go's internal wording, since the job's error is shown to clients.
		return nil, registry.NewError("SerializationError", "The task's artifact could not be encoded as JSON")
	}
	out := artifactResult{store: m.cfg.Artifacts, data: raw}
	if failed && run.Job.Attempt < t.Options.maxAttempts() {
		out.retry = job.NewRetry(run.Job, m.now().Add(t.Options.retryDelay(run.Job.Attempt)))
	}
	return out, nil
}

func (m *Manager) runShell(ctx context.Context, run *job.Run, t *Task, timeout time.Duration) (*ShellResult, error) {
	pg := &groupRecorder{run: run, ctx: ctx}
	defer pg.stop()
	opts := shell.Options{
		MaxOutput:  m.cfg.MaxOutput,
		Timeout:    timeout,
		OnStart:    pg.start,
		Env:        m.cfg.shellEnv(),
		Dir:        m.cfg.WorkDir,
		JobID:      run.Job.ID,
		Credential: m.cfg.Credential,
	}
	if tp := tracing.TraceParent(ctx); tp != "" {
		// The command may continue the trace: OpenTelemetry SDKs read
		// TRACEPARENT from the environment. Later entries win.
		opts.Env = append(opts.Env, "TRACEPARENT="+tp)
	}
	var feed *livelog.Feed
	if m.cfg.Live != nil {
		feed = m.cfg.Live.Open(run.Job.ID)
		opts.OnOutput = feed.Write
	}
	res, err := shell.Run(ctx, t.Command, opts)
	if feed != nil {
		// Closed before the job's outcome is stored, so a follower sees
		// the end of the output before the job's final state.
		var code *int
		if res.PGID != 0 {
			code = &res.ExitCode
		}
		feed.Close(code)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, err // cancelled or stopped: the scheduler records it
		}
		// The job's error is shown to clients: give the cause (such as
		// "operation not permitted") without the Go call chain.
		m.log.ErrorContext(ctx, "shell task failed to run", "task_id", t.ID, "job_id", run.Job.ID, "error", err)
		if res.PGID == 0 {
			return nil, registry.NewError("OSError", "Shell command could not be started: "+rootCause(err).Error())
		}
		return nil, registry.NewError("RuntimeError", "Shell command ran but its processes could not all be stopped: "+rootCause(err).Error())
	}
	return &ShellResult{
		Task:     shellSnapshot{ID: t.ID, Command: t.Command, CreatedAt: wire.FormatTime(t.CreatedAt), UpdatedAt: wire.FormatTime(t.UpdatedAt)},
		Stdout:   res.Stdout,
		Stderr:   res.Stderr,
		ExitCode: res.ExitCode, StdoutTruncated: res.StdoutTruncated, StderrTruncated: res.StderrTruncated, TimedOut: res.TimedOut,
		DurationSeconds:  res.Usage.Duration.Seconds(),
		CPUUserSeconds:   res.Usage.CPUUser.Seconds(),
		CPUSystemSeconds: res.Usage.CPUSystem.Seconds(),
		MaxRSSBytes:      res.Usage.MaxRSS,
	}, nil
}

// processGroupDelay is how long a shell command runs before its process
// group is written to the job's row.
//
// The group is there for one case: the service dies while the command
// runs, and the node that rescues the job kills what the command left.
// Writing it costs a transaction of its own, as much as the rest of a
// short command's execution, so it is written only once the command has
// run this long. A crash within the first moments of a command leaves no
// group in the row; the rescue then still kills, on the same host, the
// job's cgroup and every process carrying the job's marker
// (shell.KillLeftovers), and misses only processes that left both, which
// a command must have done within that short time.
const processGroupDelay = 500 * time.Millisecond

// groupRecorder writes a shell job's process group once the command has
// run for processGroupDelay.
type groupRecorder struct {
	run   *job.Run
	ctx   context.Context
	timer *time.Timer
	done  chan struct{} // closed when a started write has ended
}

func (g *groupRecorder) start(pgid int) error {
	g.done = make(chan struct{})
	g.timer = time.AfterFunc(processGroupDelay, func() {
		defer close(g.done)
		// A failed write only weakens crash recovery; the command runs on.
		_ = g.run.SetProcessGroup(g.ctx, pgid)
	})
	return nil
}

// stop cancels the write, or waits for it when it has begun.
func (g *groupRecorder) stop() {
	if g.timer != nil && !g.timer.Stop() {
		<-g.done
	}
}

// runFunction calls the task's registered function. The call runs in its
// own goroutine, so that a function ignoring its context cannot hold the
// job: when the timeout fires (or the job is cancelled) the outcome is
// recorded at once and the call, still running, is handed to the
// scheduler with [job.Run.Detach], which keeps its concurrency slot until
// the call returns or the scheduler gives up on it (docs/jobs.md).
func (m *Manager) runFunction(ctx context.Context, run *job.Run, t *Task, timeout time.Duration) (*FunctionResult, error) {
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
	t0 := time.Now()
	type outcome struct {
		result any
		err    *registry.CallError
	}
	finished := make(chan outcome, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, e := fn.Call(callCtx, t.Parameters, m.cfg.Container)
		finished <- outcome{r, e}
	}()
	returned := true
	select {
	case <-done:
	case <-callCtx.Done():
		// Give a call that heeds its context the chance to return its own
		// error (and traceback) before it counts as ignoring it.
		select {
		case <-done:
		case <-time.After(returnGrace):
			returned = false
			if run != nil {
				run.Detach(done)
			}
		}
	}
	elapsed := time.Since(t0)
	var result any
	var callErr *registry.CallError
	if returned {
		o := <-finished
		result, callErr = o.result, o.err
	}
	if ctx.Err() != nil {
		// Cancelled, deleted or interrupted: the scheduler records the
		// outcome and nothing of this call is stored.
		return nil, context.Cause(ctx)
	}
	out := &FunctionResult{
		Task: functionSnapshot{ID: t.ID, Command: t.Command, TaskType: t.TaskType, Parameters: nullIfEmpty(t.Parameters),
			CreatedAt: wire.FormatTime(t.CreatedAt), UpdatedAt: wire.FormatTime(t.UpdatedAt)},
		Result:          json.RawMessage("null"),
		DurationSeconds: elapsed.Seconds(),
	}
	switch {
	case !returned || errors.Is(context.Cause(callCtx), errTimeout) && (callErr != nil || callCtx.Err() != nil):
		trace := ""
		if callErr != nil {
			trace = callErr.Traceback
		}
		out.Error = &registry.CallError{Type: "TimeoutError", Message: fmt.Sprintf("Task timed out after %s", timeout), Traceback: trace}
	case callErr != nil:
		out.Error = callErr
	default:
		out.Result = jsonsafe.MarshalShort(result)
		if err := checkEmbeddable(out.Result); err != nil {
			out.Result = json.RawMessage("null")
			out.Error = &registry.CallError{Type: "SerializationError", Message: err.Error()}
		}
	}
	return out, nil
}

// endShellSpan ends the span of a shell command with its exit code and
// timed_out flag; a command that could not run, ran into its timeout or
// exited non-zero leaves the span with status Error.
func endShellSpan(span *tracing.Span, res *ShellResult, err error) {
	if span == nil {
		return
	}
	if res == nil {
		span.End(err)
		return
	}
	switch {
	case res.TimedOut:
		err = fmt.Errorf("timed out (exit code %d)", res.ExitCode)
	case res.ExitCode != 0:
		err = fmt.Errorf("exit code %d", res.ExitCode)
	}
	span.End(err, semconv.ProcessExitCode(res.ExitCode), tracing.TimedOutKey.Bool(res.TimedOut))
}

// endFunctionSpan ends the span of a function call; a call that returned
// an error (or timed out) leaves it with status Error and the error's type
// in error.type.
func endFunctionSpan(span *tracing.Span, res *FunctionResult, err error) {
	if span == nil {
		return
	}
	if res == nil || res.Error == nil {
		span.End(err)
		return
	}
	span.End(fmt.Errorf("%s: %s", res.Error.Type, res.Error.Message), semconv.ErrorTypeKey.String(res.Error.Type))
}

// maxResultDepth is the deepest nesting of arrays and objects a function
// result may have. The JSON decoders the service and its clients use
// (Go's encoding/json, Python's json) refuse documents nested much deeper,
// so such a result could be stored but never read back.
const maxResultDepth = 1000

// maxResultBytes caps the encoded size of a function result, so one
// result cannot exhaust memory or the database.
const maxResultBytes = 64 << 20

// checkEmbeddable reports, in words meant for the client, why an encoded
// result cannot be stored in an artifact.
func checkEmbeddable(raw json.RawMessage) error {
	if len(raw) > maxResultBytes {
		return fmt.Errorf("Result is too large to store: %d bytes of JSON, the maximum is %d", len(raw), maxResultBytes)
	}
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range raw {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	if deepest > maxResultDepth {
		return fmt.Errorf("Result is nested too deeply to store: %d levels of arrays and objects, the maximum is %d", deepest, maxResultDepth)
	}
	return nil
}

var errTimeout = errors.New("task timed out")

// returnGrace is how long a function whose context ended may take to
// return before the job is recorded without waiting for it.
const returnGrace = 100 * time.Millisecond

// rootCause returns the innermost error of err's chain (for an operating
// system failure, the errno text).
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
