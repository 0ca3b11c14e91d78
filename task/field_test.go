package task

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/job"
	"github.com/chapkit-go/chapkit/registry"
)

// escapedPID returns the PID written to dir/escaped; ok is false while the
// file is not written yet.
func escapedPID(dir string) (int, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "escaped"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 1
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// escapeCommand starts `timeout`, whose own process group killing the
// job's group would miss, and a setsid'd process, then waits.
func escapeCommand(dir string) string {
	return fmt.Sprintf(`cd %s && timeout 600 sh -c 'echo $$ > escaped; exec sleep 7171' & setsid sh -c 'echo $$ > %s/escaped2; exec sleep 7171' & sleep 1000`, dir, dir)
}

// TestEscapedProcessesDieWithTheirJob is the field report: cancelling or
// timing out a job whose command runs `timeout 600 sleep ...` (own process
// group) or setsid (own session) must leave nothing running.
func TestEscapedProcessesDieWithTheirJob(t *testing.T) {
	b := setup(t, setupOpts{maxConcurrency: 2})
	for _, end := range []string{"cancel", "timeout"} {
		t.Run(end, func(t *testing.T) {
			dir := t.TempDir()
			body := map[string]any{"command": escapeCommand(dir)}
			if end == "timeout" {
				body["timeout_seconds"] = 2
			}
			raw, _ := json.Marshal(body)
			task := mustCreate(t, b.mgr, string(raw))
			jobID, err := b.mgr.Execute(t.Context(), task.ID)
			if err != nil {
				t.Fatal(err)
			}
			var pids []int
			testkit.Eventually(t, 10*time.Second, "both escaped processes to start", func() bool {
				p1, ok1 := escapedPID(dir)
				b2, err := os.ReadFile(filepath.Join(dir, "escaped2"))
				p2, _ := strconv.Atoi(strings.TrimSpace(string(b2)))
				if !ok1 || err != nil || p2 <= 1 {
					return false
				}
				pids = []int{p1, p2}
				return true
			})
			t.Cleanup(func() {
				for _, pid := range pids {
					if processAlive(pid) {
						_ = syscallKill(pid)
					}
				}
			})
			if end == "cancel" {
				if _, err := b.sched.Cancel(t.Context(), jobID); err != nil {
					t.Fatalf("Cancel: %v", err)
				}
			}
			j := waitJob(t, b, jobID)
			want := map[string]job.Status{"cancel": job.StatusCanceled, "timeout": job.StatusCompleted}[end]
			if j.Status != want {
				t.Errorf("job status = %s, want %s", j.Status, want)
			}
			for _, pid := range pids {
				testkit.Eventually(t, 10*time.Second, fmt.Sprintf("escaped process %d to die", pid), func() bool { return !processAlive(pid) })
			}
		})
	}
}

func TestTaskEnvironmentHasNoServiceSecrets(t *testing.T) {
	const apiKey = "sk_live_field_report_key"
	const dbURL = "postgres://svc:hunter2@db/prod"
	t.Setenv("CHAPKIT_API_KEYS", apiKey+",other")
	t.Setenv("CHAPKIT_API_KEY_FILE", "/run/secrets/keys")
	t.Setenv("DATABASE_URL", dbURL)
	t.Setenv("PGPASSWORD", "hunter2")
	t.Setenv("COPY_OF_KEY", "Bearer "+apiKey)          // the secret under another name
	t.Setenv("CHAPKIT_TEST_HARMLESS", "visible-value") // ordinary variables stay
	b := setup(t, setupOpts{config: func(cfg *Config) { cfg.Secrets = []string{apiKey, dbURL, ""} }})

	task := mustCreate(t, b.mgr, `{"command":"env"}`)
	data := completedData(t, b, runTask(t, b, task.ID))
	out, _ := data["stdout"].(string)
	for _, leaked := range []string{apiKey, "hunter2", "/run/secrets/keys", "CHAPKIT_API_KEYS=", "DATABASE_URL=", "PGPASSWORD="} {
		if strings.Contains(out, leaked) {
			t.Errorf("task environment contains %q:\n%s", leaked, out)
		}
	}
	if !strings.Contains(out, "CHAPKIT_TEST_HARMLESS=visible-value\n") {
		t.Errorf("task environment lacks an ordinary inherited variable:\n%s", out)
	}
}

func TestTaskEnvironmentAllowListExtraAndDir(t *testing.T) {
	t.Setenv("CHAPKIT_TEST_KEEP", "kept")
	t.Setenv("CHAPKIT_TEST_DROP", "dropped")
	t.Setenv("DATABASE_URL", "postgres://x")
	dir := t.TempDir()
	b := setup(t, setupOpts{config: func(cfg *Config) {
		cfg.InheritEnv = []string{"CHAPKIT_TEST_KEEP", "DATABASE_URL", "PATH"}
		cfg.ExtraEnv = []string{"CHAPKIT_TEST_EXTRA=added", "CHAPKIT_TEST_KEEP=overridden"}
		cfg.WorkDir = dir
	}})
	task := mustCreate(t, b.mgr, `{"command":"pwd; env | grep -v '^PATH=' | grep -v '^PWD=' | grep -v '^SHLVL=' | grep -v '^_=' | sort"}`)
	data := completedData(t, b, runTask(t, b, task.ID))
	lines := strings.Split(strings.TrimSpace(data["stdout"].(string)), "\n")
	job := ""
	var rest []string
	for _, l := range lines[1:] {
		if v, ok := strings.CutPrefix(l, "CHAPKIT_JOB_ID="); ok {
			job = v
			continue
		}
		rest = append(rest, l)
	}
	if diff := cmp.Diff([]string{"CHAPKIT_TEST_EXTRA=added", "CHAPKIT_TEST_KEEP=overridden"}, rest); diff != "" {
		t.Errorf("task environment mismatch (-want +got):\n%s", diff)
	}
	if lines[0] != dir {
		t.Errorf("working directory = %q, want %q", lines[0], dir)
	}
	if job == "" {
		t.Error("CHAPKIT_JOB_ID is not set in the task's environment")
	}
}

func TestTaskEnvFilter(t *testing.T) {
	cfg := Config{Secrets: []string{"s3cret"}}
	got := cfg.taskEnv([]string{"A=1", "PGPASSFILE=/p", "B=x-s3cret-y", "MYSQL_PWD=z", "C=no=secret=here"})
	if diff := cmp.Diff([]string{"A=1", "C=no=secret=here"}, got); diff != "" {
		t.Errorf("taskEnv mismatch (-want +got):\n%s", diff)
	}
	none := Config{InheritEnv: []string{}}
	if got := none.taskEnv([]string{"A=1"}); len(got) != 0 {
		t.Errorf("taskEnv with an empty allow-list = %v, want nothing", got)
	}
}

// TestShellArtifactKeepsLastErrorLine is the field report: 3 MB of stderr
// and then the line that says what went wrong.
func TestShellArtifactKeepsLastErrorLine(t *testing.T) {
	b := setup(t, setupOpts{})
	task := mustCreate(t, b.mgr, `{"command":"head -c 3000000 /dev/zero | tr '\\0' e >&2; echo 'fatal: out of disk' >&2; exit 1"}`)
	data := completedData(t, b, runTask(t, b, task.ID))
	stderr, _ := data["stderr"].(string)
	if !strings.HasSuffix(stderr, "fatal: out of disk\n") || data["stderr_truncated"] != true {
		t.Errorf("stderr ends %q, stderr_truncated = %v; want the last line kept and true", stderr[max(0, len(stderr)-30):], data["stderr_truncated"])
	}
	if want := fmt.Sprintf("[... %d bytes of output dropped ...]\n", 3000019-(1<<20)); !strings.Contains(stderr, want) {
		t.Errorf("stderr lacks the marker line %q", want)
	}
}

func TestShellArtifactInvalidUTF8LikePython(t *testing.T) {
	b := setup(t, setupOpts{})
	task := mustCreate(t, b.mgr, `{"command":"printf 'ok \\300\\377 end'"}`)
	data := completedData(t, b, runTask(t, b, task.ID))
	if data["stdout"] != "ok \ufffd\ufffd end" {
		t.Errorf("stdout = %q, want %q", data["stdout"], "ok \ufffd\ufffd end")
	}
}

// topKeys returns the top-level keys of a JSON object in document order.
func topKeys(tb testing.TB, raw []byte) []string {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil { // the opening brace
		tb.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			tb.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			tb.Fatal(err)
		}
	}
	return keys
}

func TestArtifactUsageKeys(t *testing.T) {
	b := setup(t, setupOpts{register: registerFunctions})
	task := mustCreate(t, b.mgr, `{"command":"sleep 0.2; printf '%040d' 1; i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done"}`)
	j := runTask(t, b, task.ID)
	a, err := b.arts.Get(context.Background(), *j.ArtifactID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"task", "stdout", "stderr", "exit_code", "duration_seconds", "cpu_user_seconds", "cpu_system_seconds", "max_rss_bytes"}
	if diff := cmp.Diff(want, topKeys(t, a.Data)); diff != "" {
		t.Errorf("shell artifact keys mismatch (-want +got):\n%s", diff)
	}
	var data map[string]any
	_ = json.Unmarshal(a.Data, &data)
	if d := data["duration_seconds"].(float64); d < 0.2 || d > 30 {
		t.Errorf("duration_seconds = %v, want at least the 0.2 s slept", d)
	}
	if cpu := data["cpu_user_seconds"].(float64) + data["cpu_system_seconds"].(float64); cpu <= 0 {
		t.Errorf("cpu seconds = %v, want > 0 for a busy loop", cpu)
	}
	if rss := data["max_rss_bytes"].(float64); rss < 4096 {
		t.Errorf("max_rss_bytes = %v, want a real resident size", rss)
	}

	fn := mustCreate(t, b.mgr, `{"command":"greet","task_type":"python","parameters":{"name":"x"}}`)
	j = runTask(t, b, fn.ID)
	a, err = b.arts.Get(context.Background(), *j.ArtifactID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"task", "result", "error", "duration_seconds"}, topKeys(t, a.Data)); diff != "" {
		t.Errorf("function artifact keys mismatch (-want +got):\n%s", diff)
	}
}

type node struct {
	Next *node `json:"next"`
}

// TestUnencodableResultsGiveErrorArtifacts covers the kind of the 20,000
// levels report: results that cannot be stored complete the job with an
// error artifact, never fail it with encoder internals.
func TestUnencodableResultsGiveErrorArtifacts(t *testing.T) {
	deep := func(n int) any {
		var v any = "leaf"
		for range n {
			v = map[string]any{"a": v}
		}
		return v
	}
	cyc := &node{}
	cyc.Next = cyc
	b := setup(t, setupOpts{register: func(tb testing.TB, reg *registry.Registry) {
		must := func(err error) {
			if err != nil {
				tb.Fatal(err)
			}
		}
		must(registry.Register(reg, "deep_map", func(context.Context, struct{}) (any, error) { return deep(20000), nil }))
		must(registry.Register(reg, "deep_slice", func(context.Context, struct{}) (any, error) {
			var v any = 1
			for range 5000 {
				v = []any{v}
			}
			return v, nil
		}))
		must(registry.Register(reg, "just_deep_enough", func(context.Context, struct{}) (any, error) { return deep(maxResultDepth - 1), nil }))
		must(registry.Register(reg, "cycle", func(context.Context, struct{}) (*node, error) { return cyc, nil }))
		must(registry.Register(reg, "func_value", func(context.Context, struct{}) (any, error) { return func() {}, nil }))
	}})
	for _, tc := range []struct {
		name, wantErrType string
	}{
		{"deep_map", "SerializationError"},
		{"deep_slice", "SerializationError"},
		{"just_deep_enough", ""},
		{"cycle", ""},      // replaced by the not-serializable metadata object
		{"func_value", ""}, // likewise
	} {
		t.Run(tc.name, func(t *testing.T) {
			task := mustCreate(t, b.mgr, `{"command":"`+tc.name+`","task_type":"python"}`)
			data := completedData(t, b, runTask(t, b, task.ID))
			errObj, _ := data["error"].(map[string]any)
			if tc.wantErrType == "" {
				if errObj != nil || data["result"] == nil {
					t.Errorf("error = %v, result = %.80v; want a stored result", errObj, data["result"])
				}
				return
			}
			msg, _ := errObj["message"].(string)
			if errObj["type"] != tc.wantErrType || data["result"] != nil || !strings.Contains(msg, "nested too deeply") {
				t.Errorf("error = %v, result = %.80v; want %s saying it is nested too deeply, result null", errObj, data["result"], tc.wantErrType)
			}
			for _, internal := range []string{"wrapError", "json:", "encoding/json"} {
				if strings.Contains(msg, internal) {
					t.Errorf("error message %q shows Go internals (%q)", msg, internal)
				}
			}
		})
	}
}

func syscallKill(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// TestShellStartFailureIsPlainText checks that a command that cannot start
// (here: a working directory that does not exist) fails the job with the
// cause in plain words, not Go's call chain.
func TestShellStartFailureIsPlainText(t *testing.T) {
	b := setup(t, setupOpts{config: func(cfg *Config) { cfg.WorkDir = filepath.Join(t.TempDir(), "missing") }})
	task := mustCreate(t, b.mgr, `{"command":"true"}`)
	j := runTask(t, b, task.ID)
	msg := deref(j.Error)
	text, _ := msg.(string)
	t.Logf("job error: %q", text)
	if j.Status != job.StatusFailed || !strings.Contains(text, "no such file or directory") {
		t.Errorf("job = %s, error %v; want failed with the cause", j.Status, msg)
	}
	for _, internal := range []string{"shell:", "fork/exec", "chdir"} {
		if strings.Contains(text, internal) {
			t.Errorf("job error %q shows Go internals (%q)", text, internal)
		}
	}
}
