package shell

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Creating and removing a cgroup for every job costs more kernel time than
// starting the job's shell does (the kernel builds and tears down every
// control file under its global cgroup lock). So a cgroup that a job left
// empty, without it ever having to be killed, is kept for the next job.
// Cgroup v2 directories cannot be renamed, so a reusable cgroup is named
// pool-<service pid>-<n> and carries the ID of the job it runs in the
// extended attribute jobXattr, where [KillLeftovers] looks for it after a
// crash. Where extended attributes are not supported, each job gets its own
// job-<id> cgroup as before. The control files a job needs are opened once
// per cgroup and read with pread. See docs/process-containment.md.

// jobXattr is the extended attribute of a pooled cgroup that holds the ID
// of the job running in it (or that last ran in it).
const jobXattr = "user.chapkit_job_id"

// poolPrefix starts the name of a reusable cgroup.
const poolPrefix = "pool-"

// noXattr is set once setting jobXattr failed: then cgroups are not reused.
var noXattr atomic.Bool

// maxIdleCgroups bounds the idle cgroups kept for reuse; one more than the
// number of jobs running at once is enough.
const maxIdleCgroups = 64

// jobCgroup is one cgroup, with its control files open. It runs one job at
// a time.
type jobCgroup struct {
	dir   string // current path
	fd    int    // the directory, for CLONE_INTO_CGROUP
	procs int    // cgroup.procs
	stat  int    // cpu.stat, or -1
	// peak is memory.peak, or -1 when the memory controller is not enabled
	// for the cgroup. Its value covers the cgroup's whole life, so a
	// cgroup that has one is never reused.
	peak int
	// reusable says the cgroup may go back to the pool: it is named
	// pool-..., tagged with its job, and has no memory peak.
	reusable bool
	// user and system are cpu.stat's totals when the previous job in this
	// cgroup ended; a job's own use is the difference.
	user, system time.Duration
}

var cgPool struct {
	mu   sync.Mutex
	idle []*jobCgroup
	seq  atomic.Int64
}

// acquireCgroup returns a cgroup under parent for the job jobID: an idle
// one from the pool, else a new one.
func acquireCgroup(parent, jobID string) (*jobCgroup, error) {
	cgPool.mu.Lock()
	var cg *jobCgroup
	if n := len(cgPool.idle); n > 0 {
		cg = cgPool.idle[n-1]
		cgPool.idle = cgPool.idle[:n-1]
	}
	cgPool.mu.Unlock()
	if cg != nil {
		if err := cg.tag(jobID); err == nil {
			return cg, nil
		}
		_ = releaseCgroup(cg, true)
	}
	if !noXattr.Load() {
		name := fmt.Sprintf("%s%d-%d", poolPrefix, os.Getpid(), cgPool.seq.Add(1))
		cg, err := newCgroup(parent, name)
		if err != nil {
			return nil, err
		}
		if err := cg.tag(jobID); err == nil {
			cg.reusable = cg.peak < 0
			return cg, nil
		}
		noXattr.Store(true)
		_ = releaseCgroup(cg, true)
	}
	return newCgroup(parent, cgroupName(jobID))
}

// tag records jobID in the cgroup's jobXattr.
func (cg *jobCgroup) tag(jobID string) error {
	return unix.Fsetxattr(cg.fd, jobXattr, []byte(jobID), 0)
}

// newCgroup creates the cgroup parent/name and opens its control files.
func newCgroup(parent, name string) (*jobCgroup, error) {
	dir, err := makeCgroup(parent, name)
	if err != nil {
		return nil, err
	}
	cg, err := openCgroup(dir)
	if err != nil {
		_ = removeCgroup(dir)
		return nil, err
	}
	return cg, nil
}

// openCgroup opens the control files of the cgroup dir.
func openCgroup(dir string) (*jobCgroup, error) {
	cg := &jobCgroup{dir: dir, fd: -1, procs: -1, stat: -1, peak: -1}
	var err error
	if cg.fd, err = unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	if cg.procs, err = unix.Openat(cg.fd, "cgroup.procs", unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
		cg.close()
		return nil, fmt.Errorf("open cgroup: %w", err)
	}
	// cpu.stat always exists in cgroup v2; a missing one only costs the
	// usage figures, as before.
	cg.stat, _ = unix.Openat(cg.fd, "cpu.stat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	cg.peak, _ = unix.Openat(cg.fd, "memory.peak", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	return cg, nil
}

func (cg *jobCgroup) close() {
	for _, fd := range []int{cg.procs, cg.stat, cg.peak, cg.fd} {
		if fd >= 0 {
			unix.Close(fd)
		}
	}
}

// readAt0 reads a control file from its beginning, with one system call;
// each such read makes the kernel produce the current contents. It
// returns nil when fd is -1 or the read fails.
func readAt0(fd int, buf []byte) []byte {
	if fd < 0 {
		return nil
	}
	for {
		n, err := unix.Pread(fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil
		}
		return buf[:n]
	}
}

// hasLiveProcess reports whether any process in the cgroup is still
// alive. cgroup.procs leaves out a process that has exited (even while its
// exit is being finished or it waits to be reaped), so an empty list means
// nothing in the cgroup can run or fork again. A cgroup that cannot be
// read counts as occupied, which makes the caller kill it.
func (cg *jobCgroup) hasLiveProcess() bool {
	var buf [64]byte
	b := readAt0(cg.procs, buf[:])
	return b == nil || len(bytes.TrimSpace(b)) > 0
}

// usage returns the CPU time used since the previous job in the cgroup
// ended, and the peak memory when the cgroup has one.
func (cg *jobCgroup) usage() (user, system time.Duration, peak int64, ok bool) {
	var buf [512]byte
	b := readAt0(cg.stat, buf[:])
	if b == nil {
		return 0, 0, 0, false
	}
	var u, s time.Duration
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "user_usec":
			u = time.Duration(n) * time.Microsecond
		case "system_usec":
			s = time.Duration(n) * time.Microsecond
		}
	}
	user, system = u-cg.user, s-cg.system
	cg.user, cg.system = u, s
	if p := readAt0(cg.peak, buf[:]); p != nil {
		peak, _ = strconv.ParseInt(string(bytes.TrimSpace(p)), 10, 64)
	}
	return user, system, peak, true
}

// releaseCgroup ends a job's use of cg, whose processes are all gone. A
// cgroup that had to be killed, or that is not reusable, or that does not
// fit in the pool is removed; any other is kept idle for the next job.
//
// A cgroup that was killed is never reused because on some kernels (seen
// on 6.18) a process started into a cgroup after a write to its
// cgroup.kill is killed at birth.
func releaseCgroup(cg *jobCgroup, killed bool) error {
	if cg.reusable && !killed {
		cgPool.mu.Lock()
		if len(cgPool.idle) < maxIdleCgroups {
			cgPool.idle = append(cgPool.idle, cg)
			cgPool.mu.Unlock()
			return nil
		}
		cgPool.mu.Unlock()
	}
	cg.close()
	return removeCgroup(cg.dir)
}

// removeStaleIdle removes under parent the empty pooled cgroups of service
// processes that no longer exist (after a crash, or an exit that did not
// clean up). One that still holds processes stays for [KillLeftovers].
func removeStaleIdle(parent string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), poolPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid == os.Getpid() || !errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			continue
		}
		_ = unix.Rmdir(filepath.Join(parent, e.Name()))
	}
}

// pooledCgroupsOf returns the pooled cgroups under parent tagged with jobID.
func pooledCgroupsOf(parent, jobID string) []string {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return nil
	}
	var out []string
	buf := make([]byte, 256)
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), poolPrefix) {
			continue
		}
		dir := filepath.Join(parent, e.Name())
		n, err := unix.Getxattr(dir, jobXattr, buf)
		if err == nil && string(buf[:n]) == jobID {
			out = append(out, dir)
		}
	}
	return out
}
