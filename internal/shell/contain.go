package shell

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// MarkerEnv is the environment variable set on every job's shell, with the
// job's ID as value. Descendants inherit it, so it finds a job's processes
// in /proc even after they changed process group or session, or were
// reparented.
const MarkerEnv = "CHAPKIT_JOB_ID"

// Names returned by [Mechanism].
const (
	MechanismCgroup2   = "cgroup2"
	MechanismSubreaper = "subreaper"
)

// cgroupParent is the directory created under the service's own cgroup v2
// that holds one child cgroup per running job, named "job-<id>".
const cgroupParent = "chapkit-jobs"

// killWithin bounds how long ending a job waits for its processes to be gone.
const killWithin = 5 * time.Second

var contain struct {
	once sync.Once
	mech string
	// parent is the cgroup directory jobs are created under; set whenever a
	// cgroup v2 hierarchy and our place in it are known, even if the
	// subreaper was chosen, so KillLeftovers can look there.
	parent string
	reason string // why cgroup2 is not used, for the documentation and logs
}

// Mechanism returns how jobs are contained, detecting it on first use:
// [MechanismCgroup2] when the service can create cgroups under its own
// cgroup v2 and start processes in them, else [MechanismSubreaper]. The
// answer does not change for the life of the process. Safe for concurrent
// use.
func Mechanism() string {
	detect()
	return contain.mech
}

// MechanismReason explains, when [Mechanism] is the subreaper, why a cgroup
// could not be used; it is empty otherwise.
func MechanismReason() string {
	detect()
	return contain.reason
}

func detect() {
	contain.once.Do(func() {
		parent, err := cgroupParentDir()
		contain.parent = parent
		if err == nil {
			err = probeCgroup(parent)
		}
		if err == nil {
			contain.mech = MechanismCgroup2
			removeStaleIdle(parent)
			return
		}
		contain.mech, contain.reason = MechanismSubreaper, err.Error()
		// Orphans of a job's processes are then reparented to us rather
		// than to init, which keeps them visible and reapable.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})
}

// cgroupParentDir returns <cgroup2 mount>/<our cgroup>/chapkit-jobs.
func cgroupParentDir() (string, error) {
	mount, err := cgroup2Mount()
	if err != nil {
		return "", err
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read /proc/self/cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(own), "\n") {
		if rest, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(mount, filepath.Clean("/"+rest), cgroupParent), nil
		}
	}
	return "", errors.New("the service is not in a cgroup v2 hierarchy")
}

// cgroup2Mount finds where the cgroup v2 hierarchy is mounted: on a v2-only
// host usually /sys/fs/cgroup, on a hybrid one /sys/fs/cgroup/unified.
func cgroup2Mount() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("read mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	return "", errors.New("no cgroup v2 hierarchy is mounted")
}

// probeCgroup checks that a process can be started in a new cgroup under
// parent, which needs write access to the cgroup tree and a kernel with
// CLONE_INTO_CGROUP (5.7 or later).
func probeCgroup(parent string) error {
	dir, err := makeCgroup(parent, fmt.Sprintf("probe-%d", os.Getpid()))
	if err != nil {
		return err
	}
	defer removeCgroup(dir)
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup: %w", err)
	}
	defer unix.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", "exit 0")
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("start a process in a new cgroup: %w", err)
	}
	return nil
}

func makeCgroup(parent, name string) (string, error) {
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create cgroup %s: %w", parent, err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	return dir, nil
}

var safeID = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// cgroupName is the job's cgroup directory name: job-<id> for ordinary ids,
// a hex form for any other, so an id can never name a path elsewhere.
func cgroupName(jobID string) string {
	if safeID.MatchString(jobID) && jobID != "." && jobID != ".." {
		return "job-" + jobID
	}
	return fmt.Sprintf("job-x%x", jobID)
}

// killCgroup kills every process in the cgroup dir, waits until it is
// empty and removes it. It uses cgroup.kill (Linux 5.14) when present and
// otherwise freezes the cgroup, kills each listed process and thaws it, so
// nothing can fork in between.
func killCgroup(dir string) error {
	deadline := time.Now().Add(killWithin)
	// Processes reparented to us (we may be a subreaper) must be reaped by
	// us, or they stay zombies.
	members := map[int]bool{}
	if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for f := range strings.FieldsSeq(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil {
				members[pid] = true
			}
		}
	}
	defer func() {
		for len(members) > 0 && time.Now().Before(deadline) {
			if reapAdopted(members); len(members) > 0 {
				time.Sleep(5 * time.Millisecond) // waiting for SIGKILL to land
			}
		}
	}()
	for {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				if _, statErr := os.Stat(dir); errors.Is(statErr, os.ErrNotExist) {
					return nil // already removed
				}
				freezeAndKill(dir)
			} else {
				return fmt.Errorf("kill cgroup %s: %w", dir, err)
			}
		}
		if !cgroupPopulated(dir) {
			return removeCgroup(dir)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes after %v", dir, killWithin)
		}
		time.Sleep(5 * time.Millisecond) // polling the kernel's own state, not synchronising goroutines
	}
}

func freezeAndKill(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("1"), 0)
	if procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs")); err == nil {
		for f := range strings.FieldsSeq(string(procs)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
				_ = unix.Kill(pid, unix.SIGKILL)
			}
		}
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
}

func cgroupPopulated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

// removeCgroup removes an empty cgroup; one already gone is not an error.
func removeCgroup(dir string) error {
	deadline := time.Now().Add(killWithin)
	for {
		err := unix.Rmdir(dir)
		if err == nil || errors.Is(err, unix.ENOENT) {
			return nil
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			return fmt.Errorf("remove cgroup %s: %w", dir, err)
		}
		time.Sleep(5 * time.Millisecond) // the kernel releases exited tasks asynchronously
	}
}

// cgroupUsage reads the CPU time of everything that ran in the cgroup and,
// when the memory controller is enabled there, its peak memory.
func cgroupUsage(dir string) (user, system time.Duration, peak int64, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return 0, 0, 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, _ := strings.Cut(line, " ")
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		switch k {
		case "user_usec":
			user = time.Duration(n) * time.Microsecond
		case "system_usec":
			system = time.Duration(n) * time.Microsecond
		}
	}
	if p, err := os.ReadFile(filepath.Join(dir, "memory.peak")); err == nil {
		peak, _ = strconv.ParseInt(strings.TrimSpace(string(p)), 10, 64)
	}
	return user, system, peak, true
}

// markedProcesses returns the live processes whose environment holds
// MarkerEnv=jobID, with their process group IDs. Zombies have no readable
// environment and are not listed; they are already dead.
func markedProcesses(jobID string) map[int]int {
	want := []byte(MarkerEnv + "=" + jobID)
	out := map[int]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 1 || pid == self {
			continue
		}
		env, err := os.ReadFile("/proc/" + e.Name() + "/environ")
		if err != nil || !hasEntry(env, want) {
			continue
		}
		pgid, _ := unix.Getpgid(pid)
		out[pid] = pgid
	}
	return out
}

func hasEntry(environ, entry []byte) bool {
	for e := range bytes.SplitSeq(environ, []byte{0}) {
		if bytes.Equal(e, entry) {
			return true
		}
	}
	return false
}

// killMarked kills every process carrying the job's marker, in rounds until
// none is left alive (a process may fork while the previous round runs),
// and reaps those that were reparented to this process, so they do not
// stay zombies. skip is a PID that must not be reaped here (the job's
// shell, which exec.Cmd waits for).
func killMarked(jobID string, skip int) error {
	deadline := time.Now().Add(killWithin)
	killed := map[int]bool{}
	// A process in the middle of exec shows an empty environment for an
	// instant (its old address space is gone, the scan read that one) and
	// one scan can miss it, so "nothing left" needs two scans a moment
	// apart that found nothing. Only the subreaper mechanism pays this.
	clean := 0
	for {
		procs := markedProcesses(jobID)
		for pid := range procs {
			_ = unix.Kill(pid, unix.SIGKILL)
			if pid != skip {
				killed[pid] = true
			}
		}
		reapAdopted(killed)
		if len(procs) == 0 && len(killed) == 0 {
			if clean++; clean == 2 {
				return nil
			}
			time.Sleep(time.Millisecond) // past a short exec
			continue
		}
		clean = 0
		if time.Now().After(deadline) {
			return fmt.Errorf("processes of job %s still alive after %v", jobID, killWithin)
		}
		time.Sleep(5 * time.Millisecond) // let the kernel deliver SIGKILL before rescanning
	}
}

// reapAdopted collects the exit status of the killed processes that are our
// children, and forgets each one that has been reaped or that ended as some
// other process's child. A killed process whose parent dies first is
// reparented to us (as subreaper) only then, so one that is not our child
// yet is kept until it is gone.
func reapAdopted(killed map[int]bool) {
	self := os.Getpid()
	for pid := range killed {
		var ws unix.WaitStatus
		got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
		if got == pid {
			delete(killed, pid)
			continue
		}
		if err == nil {
			continue // our child, not dead yet
		}
		ppid, zombie, exists := procState(pid)
		if !exists || zombie && ppid != self {
			delete(killed, pid)
		}
	}
}

// procState reads a process's parent and whether it is a zombie.
func procState(pid int) (ppid int, zombie, exists bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, false
	}
	s := string(b)
	// The command name may hold spaces and parentheses; the fields after
	// the last ')' are "state ppid ...".
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false, true
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false, true
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0] == "Z", true
}

// KillLeftovers kills everything the job jobID started, for use after the
// process that ran it is gone (a restart after a crash): the job's cgroup
// under this process's cgroup v2 (job-<id>, or a pooled cgroup tagged with
// jobID), if it exists; every process whose
// environment carries MarkerEnv=jobID; and the process group pgid, but
// only when one of its members carries that marker, because after a crash
// the group number may already belong to an unrelated process. pgid <= 1
// means unknown. It returns the first error met, after trying every step.
// Safe for concurrent use.
//
// A process that dropped its environment (env -i) and left both the group
// and the cgroup cannot be found; see docs/process-containment.md.
func KillLeftovers(jobID string, pgid int) error {
	detect()
	var errs []error
	if contain.parent != "" {
		dir := filepath.Join(contain.parent, cgroupName(jobID))
		if _, err := os.Stat(dir); err == nil {
			errs = append(errs, killCgroup(dir))
		}
		for _, dir := range pooledCgroupsOf(contain.parent, jobID) {
			errs = append(errs, killCgroup(dir))
		}
	}
	groupMarked := false
	for _, g := range markedProcesses(jobID) {
		if pgid > 1 && g == pgid {
			groupMarked = true
		}
	}
	if groupMarked {
		members := map[int]bool{}
		for pid, g := range markedProcesses(jobID) {
			if g == pgid {
				members[pid] = true
			}
		}
		errs = append(errs, KillGroup(pgid))
		deadline := time.Now().Add(killWithin)
		for len(members) > 0 && time.Now().Before(deadline) {
			if reapAdopted(members); len(members) > 0 {
				time.Sleep(5 * time.Millisecond) // waiting for SIGKILL to land
			}
		}
	}
	errs = append(errs, killMarked(jobID, 0))
	return errors.Join(errs...)
}

// killCgroupKeep is killCgroup without the removal: it waits until the
// cgroup is empty so its counters are final.
func killCgroupKeep(dir string) error {
	deadline := time.Now().Add(killWithin)
	for cgroupPopulated(dir) {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0); errors.Is(err, os.ErrNotExist) {
			freezeAndKill(dir)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup %s still has processes after %v", dir, killWithin)
		}
		time.Sleep(5 * time.Millisecond) // polling the kernel's own state, not synchronising goroutines
	}
	return nil
}
