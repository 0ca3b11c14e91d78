// Package shell runs one shell command for the task-execution service and
// captures its result: stdout and stderr separately (each capped and made
// valid UTF-8), the exit status, and whether a timeout ended it.
//
// Every command runs in its own process group and, where the service may
// create one, its own cgroup v2; every process it starts also carries
// [MarkerEnv] in its environment. All of them are killed on cancellation,
// on timeout, when the OnStart hook fails, and as soon as the shell itself
// exits: a job never leaves processes behind, even ones that changed
// process group or session (timeout, setsid, nohup, a double-forking
// daemon), and a grandchild that holds the output pipes cannot keep [Run]
// from returning. [Mechanism] says which containment is active and
// [KillLeftovers] cleans up after a crash; docs/process-containment.md
// explains both and their limits.
package shell

import (
	"context"
	"syscall"
	"time"
)

// DefaultMaxOutput is the per-stream capture cap used when
// [Options.MaxOutput] is zero or negative: 1 MiB (docs/limits.md).
const DefaultMaxOutput = 1 << 20

// Options tunes one [Run]. The zero value is ready to use: 1 MiB per stream,
// no timeout, no hook, the caller's environment and working directory.
type Options struct {
	// MaxOutput caps each of stdout and stderr, in bytes: the first half
	// and the last half are kept. Output in between is read and discarded
	// so the command never blocks on a full pipe.
	// Zero or negative means DefaultMaxOutput.
	MaxOutput int64
	// Timeout ends the command by killing its process group. The result is
	// then reported with Result.TimedOut set and no error. Zero or negative
	// means no timeout.
	Timeout time.Duration
	// OnStart, if not nil, is called once, synchronously, right after the
	// process started, with its process group ID (for example to record it
	// in a database so a later start-up can kill orphans). The output is
	// already being drained while it runs. If it returns an error, the
	// group is killed and Run returns that error unchanged.
	OnStart func(pgid int) error
	// Env is the command's environment as "KEY=value" entries. Nil inherits
	// the caller's environment; an empty non-nil slice means none at all.
	Env []string
	// Dir is the working directory. Empty means the caller's.
	Dir string
	// JobID names the run: the shell gets MarkerEnv=JobID in its
	// environment, and under cgroup2 containment the job's cgroup is
	// named after it, so [KillLeftovers] can find its processes later.
	// Empty means a name unique within this process (fine when nothing
	// needs to find the processes after a crash).
	JobID string
	// Credential, if not nil, runs the shell as that user and group
	// (changing them needs the privilege to do so, normally root).
	Credential *syscall.Credential
	// OnOutput, if not nil, sees the output as it is read, before the
	// capture cap applies: it is called from the goroutine reading
	// stream, with each chunk (at most 32 KiB) in order. The two streams
	// are read by different goroutines, so calls for stdout and stderr
	// may overlap. chunk is only valid during the call. OnOutput must
	// return promptly and never block: while it runs, the pipe fills and
	// the command may stall. A consumer that cannot keep up should drop
	// data and count it, as internal/livelog does.
	OnOutput func(stream Stream, chunk []byte)
}

// Stream names one of a command's two output streams.
type Stream uint8

// The output streams [Options.OnOutput] reports.
const (
	Stdout Stream = iota
	Stderr
)

// String returns "stdout" or "stderr".
func (s Stream) String() string {
	if s == Stderr {
		return "stderr"
	}
	return "stdout"
}

// Usage is what a command used. CPU times come from the job's cgroup
// (cpu.stat, which covers every process that ran in it, including those
// that left the process group) when [Mechanism] is cgroup2, and otherwise
// from the reaped shell's rusage, which covers the shell and the
// descendants it waited for. MaxRSS is the cgroup's memory.peak when the
// memory controller is enabled for it, otherwise the largest resident set
// of the shell or one waited-for descendant (rusage ru_maxrss). The rusage
// value includes the service's own resident size at the start, because the
// child shares the service's memory until exec; see
// docs/process-containment.md.
type Usage struct {
	// Duration is the wall time from start to the shell's exit.
	Duration time.Duration
	// CPUUser and CPUSystem are CPU time in user and kernel mode.
	CPUUser, CPUSystem time.Duration
	// MaxRSS is the peak resident memory in bytes.
	MaxRSS int64
	// FromCgroup reports that the CPU times come from the cgroup.
	FromCgroup bool
}

// withDefaults returns a copy of o with zero values replaced by defaults.
func (o Options) withDefaults() Options {
	if o.MaxOutput <= 0 {
		o.MaxOutput = DefaultMaxOutput
	}
	return o
}

// Result is what one command produced. Its zero value describes a command
// that never started.
type Result struct {
	// Stdout and Stderr hold the captured streams as valid UTF-8: each
	// invalid byte sequence is replaced with one U+FFFD, as Python's
	// errors="replace" decoding does.
	Stdout, Stderr string
	// StdoutTruncated and StderrTruncated report that the stream exceeded
	// Options.MaxOutput. The text then holds the first half of MaxOutput
	// bytes, one line "[... N bytes of output dropped ...]" and the last
	// half, less any character the cuts split.
	StdoutTruncated, StderrTruncated bool
	// ExitCode is the shell's exit status, or -N when signal N killed it.
	// A command ended by its timeout normally reports -9 (SIGKILL); one that
	// exited by itself as the timer fired reports its own status.
	ExitCode int
	// TimedOut reports that Options.Timeout ended the command.
	TimedOut bool
	// PGID is the command's process group ID (equal to the shell's PID).
	// The group is gone by the time Run returns, and the number may then
	// be reused by an unrelated process.
	PGID int
	// Usage is what the command used; zero if it never started.
	Usage Usage
}

// Run executes command with /bin/sh -c, stdin from /dev/null, in a new
// process group, and waits for it to end. It is safe for concurrent use;
// each call owns its process and returns only after every goroutine it
// started has stopped.
//
// A non-zero exit status is not an error: it is reported in
// [Result.ExitCode] (a command sh cannot find gives 127). Nor is a timeout:
// see [Options.Timeout]. Run returns an error only when
//   - the command cannot be started (the Result is then zero);
//   - [Options.OnStart] fails (that error, unchanged);
//   - ctx is done before the command ends: the group is killed with
//     SIGKILL and Run returns promptly with context.Cause(ctx), so callers
//     can tell a cancel from a shutdown. If ctx is already done, nothing is
//     started.
//
// In the last two cases the Result holds what was captured so far.
//
// As soon as the shell exits, anything still running in its process group
// is killed, so `sleep 30 &` neither delays Run nor outlives the job. A
// process that left the group (setsid) but still holds an output pipe is
// not waited for more than a short grace period after the group is gone.
//
// If OnStart panics, the group is killed and the panic is propagated.
func Run(ctx context.Context, command string, opts Options) (Result, error) {
	if ctx.Err() != nil {
		return Result{}, context.Cause(ctx)
	}
	opts = opts.withDefaults()

	j, err := start(command, opts)
	if err != nil {
		return Result{}, err
	}

	// Timer channels need no goroutine, and Stop on return releases it.
	var timeout <-chan time.Time
	if opts.Timeout > 0 {
		t := time.NewTimer(opts.Timeout)
		defer t.Stop()
		timeout = t.C
	}

	var (
		runErr   error
		timedOut bool
	)
	if opts.OnStart != nil {
		runErr = j.onStart(opts.OnStart)
	}
	if runErr == nil {
		select {
		case <-j.exited:
		case <-ctx.Done():
			runErr = context.Cause(ctx)
		case <-timeout:
			timedOut = true
		}
	}

	res, waitErr := j.finish()
	res.TimedOut = timedOut
	if runErr != nil {
		return res, runErr
	}
	return res, waitErr
}
