package shell

import (
	"context"
	"errors"
	"fmt"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a service that runs one job and is
// then killed (see TestKillLeftoversAfterCrash).
const helperEnv = "CHAPKIT_SHELL_TEST_HELPER"

// escapes start one process that leaves the job's process group or session
// the way real programs do. Each writes its PID to the file "escaped" in the
// working directory and then sleeps.
var escapes = []struct{ name, command string }{
	{"timeout", `timeout 600 sh -c 'echo $$ > escaped; exec sleep 7171' &`},
	{"setsid", `setsid sh -c 'echo $$ > escaped; exec sleep 7171' &`},
	{"double fork", `sh -c '(setsid sh -c "echo \$\$ > escaped; exec sleep 7171" &)';`},
	{"nohup", `nohup sh -c 'echo $$ > escaped; exec sleep 7171' >/dev/null 2>&1 &`},
}

// waitEscaped is appended to an escape: the shell goes on once the PID is
// written, so the escape has happened.
const waitEscaped = ` until [ -s escaped ]; do sleep 0.01; done;`

// useMechanism runs the test under the named containment, restoring the
// detected one afterwards. Tests that call it must not run in parallel.
func useMechanism(t *testing.T, name string) {
	t.Helper()
	detect()
	saved := contain.mech
	if name == MechanismCgroup2 && saved != MechanismCgroup2 {
		t.Skipf("cgroup2 containment unavailable here: %s", contain.reason)
	}
	if name == MechanismSubreaper && saved != MechanismSubreaper {
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			t.Fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
		}
		// Otherwise later tests would adopt orphans that nobody reaps.
		t.Cleanup(func() { _ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) })
	}
	contain.mech = name
	t.Cleanup(func() { contain.mech = saved })
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// readPID waits for dir/escaped and returns the PID in it.
func readPID(t *testing.T, dir string) int {
	t.Helper()
	var pid int
	testkit.Eventually(t, 10*time.Second, "the escaped process to write its PID", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "escaped"))
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil && pid > 1
	})
	return pid
}

// assertNothingLeft fails unless the escaped process and every process
// carrying the job's marker are gone.
func assertNothingLeft(t *testing.T, jobID string, pid int) {
	t.Helper()
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) }) // never leak one into other tests
	testkit.Eventually(t, groupGoneWithin, fmt.Sprintf("escaped process %d gone", pid), func() bool { return !processAlive(pid) })
	if left := markedProcesses(jobID); len(left) > 0 {
		t.Errorf("processes still carrying %s=%s: %v", MarkerEnv, jobID, left)
	}
	if contain.parent != "" {
		if _, err := os.Stat(filepath.Join(contain.parent, cgroupName(jobID))); err == nil {
			t.Errorf("cgroup of job %s still exists", jobID)
		}
		for _, dir := range pooledCgroupsOf(contain.parent, jobID) {
			if procs, _ := os.ReadFile(filepath.Join(dir, "cgroup.procs")); len(procs) > 0 {
				t.Errorf("pooled cgroup %s of job %s still holds processes %q", dir, jobID, procs)
			}
		}
	}
}

// TestContainment ends a job in each way a job can end while a process it
// started has escaped in each way, under each containment mechanism, and
// checks that nothing survives.
func TestContainment(t *testing.T) {
	ends := []struct {
		name string
		tail string // runs after the escape happened
		run  func(t *testing.T, command string, opts Options) Result
	}{
		{"completed", " echo done", func(t *testing.T, command string, opts Options) Result {
			res, err := Run(t.Context(), command, opts)
			if err != nil || res.ExitCode != 0 {
				t.Errorf("Run = exit %d, %v; want 0, nil", res.ExitCode, err)
			}
			return res
		}},
		{"failed", " exit 3", func(t *testing.T, command string, opts Options) Result {
			res, err := Run(t.Context(), command, opts)
			if err != nil || res.ExitCode != 3 {
				t.Errorf("Run = exit %d, %v; want 3, nil", res.ExitCode, err)
			}
			return res
		}},
		{"timed out", " sleep 1000", func(t *testing.T, command string, opts Options) Result {
			opts.Timeout = time.Second
			res, err := Run(t.Context(), command, opts)
			if err != nil || !res.TimedOut {
				t.Errorf("Run = timed out %t, %v; want true, nil", res.TimedOut, err)
			}
			return res
		}},
		{"cancelled", " sleep 1000", func(t *testing.T, command string, opts Options) Result {
			ctx, cancel := context.WithCancel(t.Context())
			done, _ := runAsync(ctx, command, opts)
			readPID(t, opts.Dir)
			cancel()
			r := <-done
			if !errors.Is(r.err, context.Canceled) {
				t.Errorf("Run error = %v, want context.Canceled", r.err)
			}
			return r.res
		}},
	}
	for _, mech := range []string{MechanismCgroup2, MechanismSubreaper} {
		t.Run(mech, func(t *testing.T) {
			useMechanism(t, mech)
			for _, esc := range escapes {
				for _, end := range ends {
					t.Run(esc.name+"/"+end.name, func(t *testing.T) {
						if name := strings.Fields(esc.command)[0]; name != "sh" {
							if _, err := exec.LookPath(name); err != nil {
								t.Skipf("%s not installed", name)
							}
						}
						dir := t.TempDir()
						id := fmt.Sprintf("test-%s-%d", mech, time.Now().UnixNano())
						end.run(t, esc.command+waitEscaped+end.tail, Options{Dir: dir, JobID: id})
						assertNothingLeft(t, id, readPID(t, dir))
					})
				}
			}
		})
	}
}

func TestMechanismIsKnown(t *testing.T) {
	switch m := Mechanism(); m {
	case MechanismCgroup2:
		if MechanismReason() != "" {
			t.Errorf("MechanismReason() = %q under cgroup2, want empty", MechanismReason())
		}
	case MechanismSubreaper:
		if MechanismReason() == "" {
			t.Error("MechanismReason() is empty under the subreaper, want why cgroup2 is not used")
		}
	default:
		t.Errorf("Mechanism() = %q, want %q or %q", m, MechanismCgroup2, MechanismSubreaper)
	}
	t.Logf("containment: %s %s", Mechanism(), MechanismReason())
}

// TestKillLeftoversAfterCrash starts a job in a separate service process,
// kills that process with SIGKILL while the job and an escaped descendant
// run, and then cleans up from this process knowing only the job ID and
// the process group, as a restart after a crash does.
//
// Under cgroup2 it also runs a job whose escaped process dropped its
// environment, which only the job's (pooled) cgroup can find.
func TestKillLeftoversAfterCrash(t *testing.T) {
	type crashCase struct {
		mech     string
		clearEnv bool
	}
	for _, c := range []crashCase{{MechanismCgroup2, false}, {MechanismCgroup2, true}, {MechanismSubreaper, false}} {
		name := c.mech
		if c.clearEnv {
			name += "/env cleared"
		}
		t.Run(name, func(t *testing.T) {
			mech := c.mech
			useMechanism(t, mech)
			dir := t.TempDir()
			id := fmt.Sprintf("crash-%s-%d", mech, time.Now().UnixNano())
			helper := exec.Command(os.Args[0], "-test.run=^$")
			helper.Env = append(os.Environ(), helperEnv+"="+mech, "HELPER_JOB_ID="+id, "HELPER_DIR="+dir)
			if c.clearEnv {
				helper.Env = append(helper.Env, "HELPER_CLEAR_ENV=1")
			}
			if err := helper.Start(); err != nil {
				t.Fatal(err)
			}
			escaped := readPID(t, dir)
			var pgid int
			testkit.Eventually(t, 10*time.Second, "the helper to write the group ID", func() bool {
				b, err := os.ReadFile(filepath.Join(dir, "pgid"))
				pgid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
				return err == nil && pgid > 1
			})
			_ = helper.Process.Kill()
			_ = helper.Wait()
			if !processAlive(escaped) {
				t.Fatal("the escaped process died with the service; the test would prove nothing")
			}

			if err := KillLeftovers(id, pgid); err != nil {
				t.Errorf("KillLeftovers(%q, %d) = %v, want nil", id, pgid, err)
			}
			assertNothingLeft(t, id, escaped)
			waitGroupGone(t, pgid)
			if err := KillLeftovers(id, pgid); err != nil {
				t.Errorf("second KillLeftovers = %v, want nil (nothing left is not an error)", err)
			}
		})
	}
}

// runHelper is the crashing service of TestKillLeftoversAfterCrash. It runs
// one job that escapes with setsid and records the group, then blocks until
// it is killed.
func runHelper(mech string) {
	detect()
	contain.mech = mech
	if mech == MechanismSubreaper {
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	}
	dir := os.Getenv("HELPER_DIR")
	escape := `setsid sh -c 'echo $$ > escaped; exec sleep 7171' & sleep 7171`
	if os.Getenv("HELPER_CLEAR_ENV") != "" {
		// Without its marker, only the job's cgroup can find the process.
		escape = `setsid env -i sh -c 'echo $$ > escaped; exec sleep 7171' & sleep 7171`
	}
	_, _ = Run(context.Background(), escape, Options{
		Dir:   dir,
		JobID: os.Getenv("HELPER_JOB_ID"),
		OnStart: func(pgid int) error {
			return os.WriteFile(filepath.Join(dir, "pgid"), []byte(strconv.Itoa(pgid)), 0o600)
		},
	})
	os.Exit(2) // unreachable unless Run ended on its own
}

func TestKillLeftoversRefusesUnmarkedGroup(t *testing.T) {
	// A group that belongs to no job's marker (here: a plain child of the
	// test) is left alone, since after a crash the number may be reused.
	cmd := exec.Command("sleep", "30")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	if err := KillLeftovers("no-such-job", cmd.Process.Pid); err != nil {
		t.Errorf("KillLeftovers = %v, want nil", err)
	}
	if !processAlive(cmd.Process.Pid) {
		t.Error("KillLeftovers killed a group no process of the job was in")
	}
}

func TestCgroupName(t *testing.T) {
	for id, want := range map[string]string{
		"01JABCDEF0123456789ABCDEFG": "job-01JABCDEF0123456789ABCDEFG",
		"../etc":                     "job-x2e2e2f657463",
		"..":                         "job-x2e2e",
		"":                           "job-x",
	} {
		if got := cgroupName(id); got != want {
			t.Errorf("cgroupName(%q) = %q, want %q", id, got, want)
		}
	}
}

// idleCgroups returns the directories of the pool's idle cgroups.
func idleCgroups() []string {
	cgPool.mu.Lock()
	defer cgPool.mu.Unlock()
	var out []string
	for _, cg := range cgPool.idle {
		out = append(out, cg.dir)
	}
	return out
}

// TestCgroupReuse checks that a job that leaves nothing behind gives its
// cgroup to the next job, tagged with that job's ID, and that each job's
// CPU time is its own; and that a cgroup that had to be killed is removed
// rather than reused.
func TestCgroupReuse(t *testing.T) {
	useMechanism(t, MechanismCgroup2)
	if _, err := Run(t.Context(), "true", Options{JobID: "reuse-warm"}); err != nil {
		t.Fatal(err)
	}
	if noXattr.Load() {
		t.Skip("no extended attributes on cgroups here: every job gets a new cgroup")
	}
	idle := idleCgroups()
	if len(idle) == 0 {
		t.Fatal("no idle cgroup after a job that left nothing behind")
	}

	// A job that burns CPU, then one that does not, in the same cgroup.
	var tagged []string
	busy, err := Run(t.Context(), `i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done`, Options{JobID: "reuse-busy", OnStart: func(int) error {
		tagged = pooledCgroupsOf(contain.parent, "reuse-busy")
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tagged) != 1 || tagged[0] != idle[len(idle)-1] {
		t.Errorf("cgroups tagged with the busy job = %v, want the idle one %s", tagged, idle[len(idle)-1])
	}
	quiet, err := Run(t.Context(), "true", Options{JobID: "reuse-quiet"})
	if err != nil {
		t.Fatal(err)
	}
	busyCPU := busy.Usage.CPUUser + busy.Usage.CPUSystem
	quietCPU := quiet.Usage.CPUUser + quiet.Usage.CPUSystem
	if !busy.Usage.FromCgroup || !quiet.Usage.FromCgroup {
		t.Errorf("FromCgroup = %t, %t; want true, true", busy.Usage.FromCgroup, quiet.Usage.FromCgroup)
	}
	if busyCPU < 20*time.Millisecond || quietCPU >= busyCPU/2 {
		t.Errorf("CPU busy = %v, quiet = %v; want the busy job's own time (>= 20ms) and the quiet job's well below it", busyCPU, quietCPU)
	}

	// A job whose leftover must be killed: its cgroup goes away.
	var dirs []string
	dir := t.TempDir()
	_, err = Run(t.Context(), `setsid sh -c 'echo $$ > escaped; exec sleep 7171' &`+waitEscaped, Options{Dir: dir, JobID: "reuse-killed", OnStart: func(int) error {
		dirs = pooledCgroupsOf(contain.parent, "reuse-killed")
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	assertNothingLeft(t, "reuse-killed", readPID(t, dir))
	if len(dirs) != 1 {
		t.Fatalf("cgroups tagged with the killed job = %v, want one", dirs)
	}
	if _, err := os.Stat(dirs[0]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("killed job's cgroup %s: stat error %v, want it removed", dirs[0], err)
	}
	for _, d := range idleCgroups() {
		if d == dirs[0] {
			t.Errorf("killed job's cgroup %s is idle in the pool", d)
		}
	}
}
