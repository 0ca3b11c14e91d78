package shell

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
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
	id   string     // job ID, the value of MarkerEnv
	cg   *jobCgroup // the job's cgroup, or nil under the subreaper

	started time.Time
	ended   time.Time // when the shell exited; set before exited is closed

	// exited is closed once the shell has exited. It is still a zombie
	// then, which pins its PID and therefore the group ID.
	exited chan struct{}

	readers        sync.WaitGroup
	pipes          [2]*os.File // read ends: stdout, stderr
	stdout, stderr capture
}

// start launches command and the goroutines that drain its output and
// watch for its exit. On error nothing is left running or open.
func start(command string, opts Options) (*job, error) {
	detect()
	id := opts.JobID
	if id == "" {
		id = fmt.Sprintf("run-%d-%d", os.Getpid(), runSeq.Add(1))
	}
	env := opts.Env
	if env == nil {
		env = os.Environ()
	}
	env = withMarker(env, id)

	attr := &syscall.SysProcAttr{Setpgid: true, Credential: opts.Credential}
	var cg *jobCgroup
	if contain.mech == MechanismCgroup2 {
		var err error
		if cg, err = acquireCgroup(contain.parent, id); err != nil {
			return nil, fmt.Errorf("shell: %w", err)
		}
		attr.UseCgroupFD, attr.CgroupFD = true, cg.fd
	}

	outR, outW, err := outputPipe()
	if err != nil {
		return nil, fmt.Errorf("shell: stdout pipe: %w", err)
	}
	errR, errW, err := outputPipe()
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
	cmd.Dir = opts.Dir
	cmd.SysProcAttr = attr
	t0 := time.Now()
	err = cmd.Start()
	// The child holds its own copies of the write ends now. Ours must go, or
	// the readers would never see EOF.
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		if cg != nil {
			// Nothing ran in it, so it may be reused.
			_ = releaseCgroup(cg, false)
		}
		return nil, fmt.Errorf("shell: start: %w", err)
	}

	j := &job{
		cmd:     cmd,
		pgid:    cmd.Process.Pid, // Setpgid with Pgid 0: the group is named after the shell
		id:      id,
		cg:      cg,
		started: t0,
		exited:  make(chan struct{}),
		pipes:   [2]*os.File{outR, errR},
		stdout:  capture{max: opts.MaxOutput},
		stderr:  capture{max: opts.MaxOutput},
	}
	go j.waitExit()
	var obsOut, obsErr func([]byte)
	if f := opts.OnOutput; f != nil {
		obsOut = func(p []byte) { f(Stdout, p) }
		obsErr = func(p []byte) { f(Stderr, p) }
	}
	j.readers.Go(func() { j.stdout.drain(outR, obsOut) })
	j.readers.Go(func() { j.stderr.drain(errR, obsErr) })
	return j, nil
}

// outputPipe returns a pipe for one output stream. Only the read end, which
// the service reads with deadlines, is non-blocking and registered with
// the runtime's poller; the write end goes to the child as a plain
// blocking descriptor, which saves registering it only to close it at
// once. Both are close-on-exec from the start, so no lock against a
// concurrent fork is needed.
func outputPipe() (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, err
	}
	if err := unix.SetNonblock(p[0], true); err != nil {
		unix.Close(p[0])
		unix.Close(p[1])
		return nil, nil, err
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// waitExit closes j.exited when the shell has exited, without reaping it.
func (j *job) waitExit() {
	defer close(j.exited)
	defer func() { j.ended = time.Now() }()
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
	// Then whatever left the group: everything in the job's cgroup, or
	// every process carrying the job's marker. The shell is an unreaped
	// zombie here and not listed as alive in its cgroup, so for a job that
	// left nothing behind the cgroup needs no kill and can be reused.
	var containErr error
	cgKilled := false
	if j.cg == nil {
		containErr = killMarked(j.id, j.pgid)
	} else if j.cg.hasLiveProcess() {
		cgKilled = true
		if err := os.WriteFile(j.cg.dir+"/cgroup.kill", []byte("1"), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			containErr = fmt.Errorf("shell: kill cgroup: %w", err)
		}
	}

	var waitErr error
	if err := j.cmd.Wait(); err != nil {
		var exitErr *exec.ExitError
		if !errors.As(err, &exitErr) {
			waitErr = fmt.Errorf("shell: wait: %w", err)
		}
	}
	var usage Usage
	if j.cg != nil {
		// The reap above lets the cgroup empty; its counters then cover
		// every process the job ran, escaped or not.
		if cgKilled {
			if err := killCgroupKeep(j.cg.dir); err != nil && containErr == nil {
				containErr = fmt.Errorf("shell: %w", err)
			}
		}
		usage.CPUUser, usage.CPUSystem, usage.MaxRSS, usage.FromCgroup = j.cg.usage()
		if err := releaseCgroup(j.cg, cgKilled); err != nil && containErr == nil {
			containErr = fmt.Errorf("shell: %w", err)
		}
	}
	if ps := j.cmd.ProcessState; ps != nil {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			if !usage.FromCgroup {
				usage.CPUUser = time.Duration(ru.Utime.Nano())
				usage.CPUSystem = time.Duration(ru.Stime.Nano())
			}
			if usage.MaxRSS == 0 {
				usage.MaxRSS = ru.Maxrss * 1024 // Linux reports kilobytes
			}
		}
	}
	usage.Duration = j.ended.Sub(j.started)

	deadline := time.Now().Add(drainGrace)
	for _, r := range j.pipes {
		_ = r.SetReadDeadline(deadline) // the read ends are pollable, so this cannot fail
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
		Usage:           usage,
	}
	if ps := j.cmd.ProcessState; ps != nil {
		res.ExitCode = exitCode(ps)
	}
	if waitErr != nil {
		return res, waitErr
	}
	return res, containErr
}

// runSeq numbers runs without a job ID, for their marker and cgroup name.
var runSeq atomic.Int64

// withMarker returns env without any inherited MarkerEnv entry and with
// MarkerEnv=id appended.
func withMarker(env []string, id string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, MarkerEnv+"=") {
			out = append(out, kv)
		}
	}
	return append(out, MarkerEnv+"="+id)
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
