package shell

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// drainGrace bounds how long the readers keep going once the process group
// is dead and the shell reaped. Output the group wrote is already in the
// pipes and is read at once; only a process that left the group (setsid)
// while keeping a pipe open can make the readers wait this long. Without
// the bound such a process would hang Run for as long as it lives.
const drainGrace = 2 * time.Second

// job is one started command. It deliberately does not use exec.Cmd's
// Cancel, WaitDelay or io.Writer outputs, the usual way: with
// those, Cmd.Wait reaps the shell and then waits for its copy goroutines,
// and offers no point in between. The group must be killed exactly there,
// while the shell is an unreaped zombie: a backgrounded grandchild holding
// the pipes would otherwise keep Wait blocked, and after the reap the group
// ID could already belong to an unrelated process. So job owns the pipes
// (the child gets *os.File, so exec starts no goroutines), detects the exit
// with waitid(WNOWAIT), and bounds the drain with read deadlines, which is
// what WaitDelay would do.
type job struct {
	cmd  *exec.Cmd
	pgid int

	// exited is closed once the shell has exited. It is still a zombie
	// then, which pins its PID and therefore the group ID.
	exited chan struct{}

	readers        sync.WaitGroup
	pipes          [2]*os.File // read ends: stdout, stderr
	stdout, stderr capture
}

// start launches command and the goroutines that drain its output and
// watch for its exit. On error nothing is left running or open.
func start(command string, maxOutput int64, env []string, dir string) (*job, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("shell: stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return nil, fmt.Errorf("shell: stderr pipe: %w", err)
	}

	cmd := exec.Command("/bin/sh", "-c", command)
	// Stdin stays nil: exec connects it to /dev/null.
	cmd.Stdout = outW
	cmd.Stderr = errW
	cmd.Env = env
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	// The child holds its own copies of the write ends now. Ours must go, or
	// the readers would never see EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return nil, fmt.Errorf("shell: start: %w", err)
	}

	j := &job{
		cmd:    cmd,
		pgid:   cmd.Process.Pid, // Setpgid with Pgid 0: the group is named after the shell
		exited: make(chan struct{}),
		pipes:  [2]*os.File{outR, errR},
		stdout: capture{max: maxOutput},
		stderr: capture{max: maxOutput},
	}
	go j.waitExit()
	j.readers.Go(func() { j.stdout.drain(outR) })
	j.readers.Go(func() { j.stderr.drain(errR) })
	return j, nil
}

// waitExit closes j.exited when the shell has exited, without reaping it.
func (j *job) waitExit() {
	defer close(j.exited)
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, j.pgid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			// Any other error (none is expected for our own child) is left
			// to cmd.Wait in finish to report.
			return
		}
	}
}

// onStart calls fn with the group ID. If fn panics, the job is finished
// first so that no process, goroutine or descriptor outlives the panic.
func (j *job) onStart(fn func(pgid int) error) error {
	defer func() {
		if p := recover(); p != nil {
			j.finish()
			panic(p)
		}
	}()
	return fn(j.pgid)
}

// finish ends the job whatever state it is in: it kills the group, reaps
// the shell, drains the pipes (for at most drainGrace) and returns the
// result. It returns an error only if the shell could not be reaped.
func (j *job) finish() (Result, error) {
	select {
	case <-j.exited:
	default:
		j.kill()
		<-j.exited
	}
	// Whatever the shell left running in its group dies here, before the
	// reap below frees the group ID for reuse.
	j.kill()

	var waitErr error
	if err := j.cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			waitErr = fmt.Errorf("shell: wait: %w", err)
		}
	}

	deadline := time.Now().Add(drainGrace)
	for _, r := range j.pipes {
		_ = r.SetReadDeadline(deadline) // pipes from os.Pipe are pollable, so this cannot fail
	}
	j.readers.Wait()
	for _, r := range j.pipes {
		r.Close()
	}

	res := Result{
		Stdout:          j.stdout.text(),
		Stderr:          j.stderr.text(),
		StdoutTruncated: j.stdout.truncated,
		StderrTruncated: j.stderr.truncated,
		PGID:            j.pgid,
	}
	if ps := j.cmd.ProcessState; ps != nil {
		res.ExitCode = exitCode(ps)
	}
	return res, waitErr
}

// kill sends SIGKILL to the job's group. The only possible failure is ESRCH
// (the group is already empty), which KillGroup treats as success.
func (j *job) kill() {
	_ = KillGroup(j.pgid)
}

// exitCode returns the exit status, or -N when signal N ended the process.
func exitCode(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -int(ws.Signal())
	}
	return ps.ExitCode()
}
