package shell

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"go.uber.org/goleak"

	"github.com/chapkit-go/chapkit/internal/testkit"
)

func TestMain(m *testing.M) {
	if mech := os.Getenv(helperEnv); mech != "" {
		runHelper(mech)
	}
	goleak.VerifyTestMain(m)
}

// groupGoneWithin is generous because killed members linger as zombies
// until init reaps them, which some container inits do only periodically.
const groupGoneWithin = 15 * time.Second

// ignorePGID compares Results without the group ID, which differs per run,
// and without the resource usage, which TestRunUsage checks.
var ignorePGID = cmpopts.IgnoreFields(Result{}, "PGID", "Usage")

// ignoreUsage compares Results without the resource usage.
var ignoreUsage = cmpopts.IgnoreFields(Result{}, "Usage")

// waitGroupGone fails the test unless the process group disappears.
func waitGroupGone(tb testing.TB, pgid int) {
	tb.Helper()
	if pgid <= 1 {
		tb.Fatalf("PGID = %d, want > 1", pgid)
	}
	testkit.Eventually(tb, groupGoneWithin, "process group "+strconv.Itoa(pgid)+" gone", func() bool {
		return !GroupAlive(pgid)
	})
}

// runResult is one Run's return values, sent over a channel.
type runResult struct {
	res     Result
	err     error
	elapsed time.Duration
}

// runAsync starts Run in a goroutine and returns a channel for its outcome
// plus a channel that receives the group ID from OnStart. The test must
// receive from the outcome channel before it ends.
func runAsync(ctx context.Context, command string, opts Options) (<-chan runResult, <-chan int) {
	started := make(chan int, 1)
	opts.OnStart = func(pgid int) error {
		started <- pgid
		return nil
	}
	done := make(chan runResult, 1)
	go func() {
		t0 := time.Now()
		res, err := Run(ctx, command, opts)
		done <- runResult{res: res, err: err, elapsed: time.Since(t0)}
	}()
	return done, started
}

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		command string
		opts    Options
		want    Result
	}{
		{
			name:    "stdout",
			command: "echo hello",
			want:    Result{Stdout: "hello\n"},
		},
		{
			name:    "stderr only",
			command: ">&2 echo err",
			want:    Result{Stderr: "err\n"},
		},
		{
			name:    "both streams separately",
			command: "echo out; echo err >&2; echo out2",
			want:    Result{Stdout: "out\nout2\n", Stderr: "err\n"},
		},
		{
			name:    "exit status",
			command: "exit 3",
			want:    Result{ExitCode: 3},
		},
		{
			name:    "killed by signal",
			command: "kill -TERM $$",
			want:    Result{ExitCode: -15},
		},
		{
			name:    "command not found",
			command: "no-such-command-chapkit-test",
			want:    Result{Stderr: "want non-empty", ExitCode: 127},
		},
		{
			name:    "invalid utf-8 replaced",
			command: `printf 'a\377b'`,
			want:    Result{Stdout: "a\ufffdb"},
		},
		{
			name:    "multi-line output",
			command: "for i in 1 2 3; do echo line $i; done",
			want:    Result{Stdout: "line 1\nline 2\nline 3\n"},
		},
		{
			name:    "cap applies per stream",
			command: "printf 12345; printf abcdefgh >&2",
			opts:    Options{MaxOutput: 5},
			want:    Result{Stdout: "12345", Stderr: "ab\n" + marker(3) + "fgh", StderrTruncated: true},
		},
		{
			name:    "cap does not split a character",
			command: `printf 'a\303\251xyz\303\251'`, // "aéxyzé"
			opts:    Options{MaxOutput: 4},
			want:    Result{Stdout: "a\n" + marker(5) + "é", StdoutTruncated: true},
		},
		{
			name:    "each invalid sequence is one replacement",
			command: `printf 'ok \300\377 end \342\202a'`,
			want:    Result{Stdout: "ok \ufffd\ufffd end \ufffda"},
		},
		{
			name:    "environment",
			command: `printf '%s|%s' "$CHAPKIT_A" "$HOME"`,
			opts:    Options{Env: []string{"CHAPKIT_A=x"}},
			want:    Result{Stdout: "x|"},
		},
		{
			name:    "working directory",
			command: "pwd",
			opts:    Options{Dir: "/"},
			want:    Result{Stdout: "/\n"},
		},
		{
			name:    "stdin is empty",
			command: "wc -c",
			want:    Result{Stdout: "0\n"},
		},
		{
			name:    "both streams past the pipe buffer",
			command: "head -c 200000 /dev/zero | tr '\\0' a; head -c 300000 /dev/zero | tr '\\0' b >&2",
			want:    Result{Stdout: strings.Repeat("a", 200000), Stderr: strings.Repeat("b", 300000)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Run(t.Context(), tc.command, tc.opts)
			if err != nil {
				t.Fatalf("Run(%q) error = %v, want nil", tc.command, err)
			}
			if got.PGID <= 1 {
				t.Errorf("Run(%q).PGID = %d, want > 1", tc.command, got.PGID)
			}
			if tc.want.Stderr == "want non-empty" {
				// sh's wording differs between shells; only its presence matters.
				if got.Stderr == "" {
					t.Errorf("Run(%q).Stderr is empty, want sh's message", tc.command)
				}
				got.Stderr = tc.want.Stderr
			}
			if diff := cmp.Diff(tc.want, got, ignorePGID); diff != "" {
				t.Errorf("Run(%q) mismatch (-want +got):\n%s", tc.command, diff)
			}
		})
	}
}

func TestRunFloodIsCapped(t *testing.T) {
	got, err := Run(t.Context(), `head -c 3000000 /dev/zero | tr '\0' x`, Options{MaxOutput: 1 << 20})
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	half := strings.Repeat("x", 1<<19)
	want := Result{Stdout: half + "\n" + marker(3000000-1<<20) + half, StdoutTruncated: true}
	if diff := cmp.Diff(want, got, ignorePGID); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

// TestRunKeepsLastErrorLine is the failing command whose last line says
// what went wrong after megabytes of noise.
func TestRunKeepsLastErrorLine(t *testing.T) {
	got, err := Run(t.Context(), `head -c 3000000 /dev/zero | tr '\0' n >&2; echo 'fatal: disk full' >&2; exit 1`, Options{})
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if !got.StderrTruncated || !strings.HasSuffix(got.Stderr, "nfatal: disk full\n") {
		t.Errorf("StderrTruncated = %t, Stderr ends %q; want true and the last line kept", got.StderrTruncated, got.Stderr[max(0, len(got.Stderr)-40):])
	}
	if n := strings.Count(got.Stderr, "bytes of output dropped"); n != 1 {
		t.Errorf("Stderr has %d marker lines, want 1", n)
	}
	if len(got.Stderr) > DefaultMaxOutput+100 {
		t.Errorf("len(Stderr) = %d, want about %d", len(got.Stderr), DefaultMaxOutput)
	}
}

func TestRunDefaultCap(t *testing.T) {
	got, err := Run(t.Context(), `head -c 1048577 /dev/zero | tr '\0' y`, Options{})
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	want := DefaultMaxOutput + len("\n"+marker(1))
	if len(got.Stdout) != want || !got.StdoutTruncated {
		t.Errorf("len(Stdout), StdoutTruncated = %d, %t; want %d, true", len(got.Stdout), got.StdoutTruncated, want)
	}
}

func TestRunCancel(t *testing.T) {
	errStop := errors.New("stopped by test")
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)

	done, started := runAsync(ctx, "sleep 1000 & sleep 1000; wait", Options{})
	var pgid int
	select {
	case pgid = <-started:
	case r := <-done:
		t.Fatalf("Run returned before OnStart: %+v, %v", r.res, r.err)
	}
	cancel(errStop)

	var r runResult
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancellation")
	}
	if !errors.Is(r.err, errStop) {
		t.Errorf("Run error = %v, want the cancel cause %v", r.err, errStop)
	}
	want := Result{ExitCode: -9, PGID: pgid}
	if diff := cmp.Diff(want, r.res, ignoreUsage); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	waitGroupGone(t, pgid)
}

func TestRunCancelPlain(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	done, started := runAsync(ctx, "echo partial; sleep 1000", Options{})
	<-started
	cancel()
	r := <-done
	if !errors.Is(r.err, context.Canceled) {
		t.Errorf("Run error = %v, want context.Canceled", r.err)
	}
	// The echo may or may not have run before the kill.
	if r.res.Stdout != "" && r.res.Stdout != "partial\n" {
		t.Errorf("Stdout = %q, want empty or the partial output", r.res.Stdout)
	}
	waitGroupGone(t, r.res.PGID)
}

func TestRunContextDoneBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancelCause(t.Context())
	errStop := errors.New("already stopped")
	cancel(errStop)
	called := false
	got, err := Run(ctx, "echo never", Options{OnStart: func(int) error {
		called = true
		return nil
	}})
	if !errors.Is(err, errStop) {
		t.Errorf("Run error = %v, want %v", err, errStop)
	}
	if diff := cmp.Diff(Result{}, got); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	if called {
		t.Error("OnStart was called, want nothing started")
	}
}

func TestRunTimeout(t *testing.T) {
	t0 := time.Now()
	got, err := Run(t.Context(), "sleep 30", Options{Timeout: 200 * time.Millisecond})
	elapsed := time.Since(t0)
	if err != nil {
		t.Fatalf("Run error = %v, want nil (a timeout is a normal result)", err)
	}
	want := Result{ExitCode: -9, TimedOut: true}
	if diff := cmp.Diff(want, got, ignorePGID); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Run took %v, want well under the command's 30s", elapsed)
	}
	waitGroupGone(t, got.PGID)
}

func TestRunTimeoutNotReached(t *testing.T) {
	got, err := Run(t.Context(), "echo quick", Options{Timeout: time.Minute})
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if diff := cmp.Diff(Result{Stdout: "quick\n"}, got, ignorePGID); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

func TestRunKillsBackgroundHolder(t *testing.T) {
	t0 := time.Now()
	got, err := Run(t.Context(), "sleep 30 & echo done", Options{})
	elapsed := time.Since(t0)
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if diff := cmp.Diff(Result{Stdout: "done\n"}, got, ignorePGID); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	// Under drainGrace: the group kill, not the drain bound, released Run.
	if elapsed >= drainGrace {
		t.Errorf("Run took %v, want under %v", elapsed, drainGrace)
	}
	waitGroupGone(t, got.PGID)
}

func TestRunDoesNotHangOnEscapedHolder(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		t.Skip("setsid not installed")
	}
	dir := t.TempDir()
	// The child leaves the group with setsid but keeps stdout open; the shell
	// waits until it has written its PID so the escape has happened.
	command := `setsid sh -c 'echo $$ > pid; exec sleep 30' & until [ -s pid ]; do sleep 0.01; done; echo started`
	t0 := time.Now()
	got, err := Run(t.Context(), command, Options{Dir: dir})
	elapsed := time.Since(t0)

	pidText, readErr := os.ReadFile(filepath.Join(dir, "pid"))
	if readErr == nil {
		if pid, convErr := strconv.Atoi(strings.TrimSpace(string(pidText))); convErr == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL) // not in the group, so Run could not
		}
	}
	if err != nil {
		t.Fatalf("Run error = %v, want nil", err)
	}
	if diff := cmp.Diff(Result{Stdout: "started\n"}, got, ignorePGID); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	if elapsed > drainGrace+10*time.Second {
		t.Errorf("Run took %v, want about %v", elapsed, drainGrace)
	}
}

func TestRunOnStartError(t *testing.T) {
	errRecord := errors.New("record pgid failed")
	var seen int
	t0 := time.Now()
	got, err := Run(t.Context(), "sleep 30 & sleep 30", Options{OnStart: func(pgid int) error {
		seen = pgid
		if !GroupAlive(pgid) {
			t.Errorf("GroupAlive(%d) = false inside OnStart, want true", pgid)
		}
		return errRecord
	}})
	if err != errRecord {
		t.Errorf("Run error = %v, want exactly %v", err, errRecord)
	}
	if elapsed := time.Since(t0); elapsed >= drainGrace {
		t.Errorf("Run took %v, want under %v", elapsed, drainGrace)
	}
	want := Result{ExitCode: -9, PGID: seen}
	if diff := cmp.Diff(want, got, ignoreUsage); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
	waitGroupGone(t, seen)
}

func TestRunOnStartPanic(t *testing.T) {
	var seen int
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want boom", p)
			}
		}()
		_, _ = Run(t.Context(), "sleep 30", Options{OnStart: func(pgid int) error {
			seen = pgid
			panic("boom")
		}})
	}()
	waitGroupGone(t, seen)
}

func TestRunStartFailure(t *testing.T) {
	got, err := Run(t.Context(), "true", Options{Dir: filepath.Join(t.TempDir(), "missing")})
	if err == nil {
		t.Fatal("Run error = nil, want a start failure")
	}
	if diff := cmp.Diff(Result{}, got); diff != "" {
		t.Errorf("Run mismatch (-want +got):\n%s", diff)
	}
}

func BenchmarkRunTrue(b *testing.B) {
	ctx := b.Context()
	for b.Loop() {
		if _, err := Run(ctx, "true", Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("sh", "-c", "true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestRunOnOutput checks that OnOutput sees a stream's bytes while the
// command still runs (the command waits for a file the test creates only
// once the first line arrived) and, in total, exactly what was written,
// past the capture cap too.
func TestRunOnOutput(t *testing.T) {
	gate := filepath.Join(t.TempDir(), "gate")
	var mu sync.Mutex
	got := map[Stream]*strings.Builder{Stdout: {}, Stderr: {}}
	first := make(chan struct{})
	var once sync.Once
	cmd := `echo first; while [ ! -e ` + gate + ` ]; do sleep 0.01; done; head -c 3000 /dev/zero | tr '\0' x; echo oops >&2`
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	go func() {
		res, err := Run(t.Context(), cmd, Options{MaxOutput: 1000, OnOutput: func(s Stream, p []byte) {
			mu.Lock()
			got[s].Write(p)
			mu.Unlock()
			once.Do(func() { close(first) })
		}})
		done <- outcome{res, err}
	}()
	select {
	case <-first:
	case o := <-done:
		t.Fatalf("Run returned before any output was observed: %+v", o)
	case <-time.After(10 * time.Second):
		t.Fatal("no output observed within 10s")
	}
	mu.Lock()
	if diff := cmp.Diff("first\n", got[Stdout].String()); diff != "" {
		t.Errorf("stdout seen while running (-want +got):\n%s", diff)
	}
	mu.Unlock()
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	if !o.res.StdoutTruncated {
		t.Error("stdout not truncated in the Result, want the cap to apply to the capture only")
	}
	want := map[Stream]string{Stdout: "first\n" + strings.Repeat("x", 3000), Stderr: "oops\n"}
	seen := map[Stream]string{Stdout: got[Stdout].String(), Stderr: got[Stderr].String()}
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("observed output (-want +got):\n%s", diff)
	}
}
