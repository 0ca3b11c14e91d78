// Package pgtest gives tests a real PostgreSQL: the server named by
// CHAPKIT_TEST_POSTGRES_URL when it is set, otherwise a throwaway cluster
// started from the installed PostgreSQL binaries in a temporary directory
// (one per test process, stopped when the process ends). Each test gets a
// database of its own, so tests never share state.
//
// When neither is available the calling test is skipped with a message
// that says what is missing; CI installs PostgreSQL so nothing is skipped
// there.
package pgtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// EnvURL names the variable holding the URL of an existing server to use
// instead of a throwaway cluster. The role in it must be allowed to create
// databases.
const EnvURL = "CHAPKIT_TEST_POSTGRES_URL"

var (
	serverOnce sync.Once
	serverURL  string // admin URL of the server, "" when none
	serverErr  error  // why there is no server
	cluster    *exec.Cmd
	clusterDir string
)

// URL returns the URL of a new, empty database for this test, dropped when
// the test ends. It skips the test when no PostgreSQL can be found.
func URL(tb testing.TB) string {
	tb.Helper()
	admin, err := server()
	if err != nil {
		tb.Skipf("PostgreSQL tests skipped: %v", err)
	}
	name := "chapkit_" + strings.ToLower(rand.Text()[:16])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		tb.Fatalf("pgtest: open admin connection: %v", err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", admin)
		if err != nil {
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	u, _ := url.Parse(admin)
	u.Path = "/" + name
	return u.String()
}

// Available reports whether PostgreSQL tests can run, and if not, why.
func Available() (bool, string) {
	if _, err := server(); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// Stop stops the throwaway cluster, if one was started. Call it from
// TestMain after m.Run; a cluster also stops when the test process dies,
// because it is started with a parent-death signal.
func Stop() {
	if cluster == nil || cluster.Process == nil {
		return
	}
	_ = cluster.Process.Signal(syscall.SIGINT) // fast shutdown
	done := make(chan struct{})
	go func() { _ = cluster.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cluster.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(clusterDir)
	cluster = nil
}

func server() (string, error) {
	serverOnce.Do(func() {
		if u := os.Getenv(EnvURL); u != "" {
			serverURL = u
			return
		}
		serverURL, serverErr = startCluster()
	})
	return serverURL, serverErr
}

// binDir finds the directory holding initdb and postgres: PATH first, then
// Debian's /usr/lib/postgresql/<version>/bin, newest version first.
func binDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
			return dir, nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool { return versionOf(matches[i]) > versionOf(matches[j]) })
	for _, m := range matches {
		return filepath.Dir(m), nil
	}
	return "", fmt.Errorf("set %s, or install PostgreSQL's server binaries (initdb and postgres; Debian package postgresql)", EnvURL)
}

func versionOf(path string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(path))))
	return v
}

// startCluster runs initdb and postgres in a fresh directory, listening on
// a Unix socket there only. PostgreSQL refuses to run as root, so as root
// both run as the postgres user.
func startCluster() (string, error) {
	bin, err := binDir()
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "chapkit-pg-")
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", fmt.Errorf("running as root needs a postgres user to run the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return "", fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return "", fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	logFile, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return "", err
	}
	defer logFile.Close()
	if cred != nil {
		_ = os.Chown(logFile.Name(), int(cred.Uid), int(cred.Gid))
	}
	// Settings for a disposable test server: no durability work, enough
	// connections for several nodes per test, quick shutdown.
	pg := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=", "-c", "unix_socket_directories="+dir,
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
		"-c", "max_connections=300", "-c", "shared_buffers=128MB")
	pg.Stdout, pg.Stderr = logFile, logFile
	pg.Dir = dir
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := pg.Start(); err != nil {
		return "", fmt.Errorf("start postgres: %w", err)
	}
	cluster, clusterDir = pg, dir
	admin := (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
		RawQuery: url.Values{"host": {dir}, "sslmode": {"disable"}}.Encode()}).String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		db, err := sql.Open("pgx", admin)
		if err == nil {
			err = db.Ping()
			db.Close()
		}
		if err == nil {
			return admin, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
			Stop()
			return "", fmt.Errorf("postgres did not accept connections within 30 s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond) // polling the server's start-up, not synchronising test logic
	}
}

// EnvEngine selects the database engine of the suites that run on both:
// "postgres", or anything else for SQLite. [RerunOnPostgres] sets it in
// the child process it starts.
const EnvEngine = "CHAPKIT_TEST_ENGINE"

// EnvReport names a file that [RerunOnPostgres] appends one summary line
// to per package, so CI can print how many PostgreSQL tests ran.
const EnvReport = "CHAPKIT_TEST_POSTGRES_REPORT"

// OnPostgres reports whether this test process runs its suite on
// PostgreSQL.
func OnPostgres() bool { return os.Getenv(EnvEngine) == "postgres" }

// RerunOnPostgres runs the tests of this test binary again with
// CHAPKIT_TEST_ENGINE=postgres, in a child process of the same binary: the
// same suite on the second engine, not a copy of it. The child inherits
// -run (unless the pattern names this test itself, such as
// -run TestPostgres, which means "the whole suite on PostgreSQL"), -skip,
// -short, -failfast and -timeout. Call it from one test per
// package; in the child it skips itself.
func RerunOnPostgres(t *testing.T) {
	if OnPostgres() {
		t.Skip("this process is the PostgreSQL run")
	}
	admin, err := server()
	if err != nil {
		t.Skipf("PostgreSQL run skipped: %v", err)
	}
	args := []string{"-test.v", "-test.count=1"}
	for _, name := range []string{"test.run", "test.skip", "test.short", "test.failfast", "test.timeout"} {
		f := flag.Lookup(name)
		if name == "test.run" && f != nil && strings.Contains(f.Value.String(), t.Name()) {
			continue
		}
		if f != nil && f.Value.String() != "" && f.Value.String() != "false" && f.Value.String() != "0s" {
			args = append(args, "-"+name+"="+f.Value.String())
		}
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], args...)
	cmd.Env = append(os.Environ(), EnvEngine+"=postgres", EnvURL+"="+admin)
	out, err := cmd.CombinedOutput()
	passed, failed, skipped := 0, 0, 0
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "--- PASS"):
			passed++
		case strings.HasPrefix(line, "--- FAIL"):
			failed++
		case strings.HasPrefix(line, "--- SKIP"):
			skipped++
		}
	}
	// go test names the binary after the package: "job.test".
	pkg := strings.TrimSuffix(filepath.Base(os.Args[0]), ".test")
	summary := fmt.Sprintf("PostgreSQL run of package %s: %d passed, %d failed, %d skipped", pkg, passed, failed, skipped)
	t.Log(summary)
	if report := os.Getenv(EnvReport); report != "" {
		if f, ferr := os.OpenFile(report, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); ferr == nil {
			fmt.Fprintln(f, summary)
			f.Close()
		}
	}
	if err != nil || failed > 0 {
		t.Errorf("%s (%v); output of the PostgreSQL run:\n%s", summary, err, out)
	}
}
