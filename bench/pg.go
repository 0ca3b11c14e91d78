package main

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
)

// pgServer is the PostgreSQL server the PostgreSQL matrix runs on: one
// named with -pg, or a throwaway cluster started from the installed
// binaries. Every run gets a database of its own, dropped afterwards.
type pgServer struct {
	admin   string // URL of the maintenance database "postgres"
	version string
	cmd     *exec.Cmd // the throwaway cluster's postmaster, nil for -pg
	dir     string
}

// pgSettings are the server settings the throwaway cluster changes from
// PostgreSQL's defaults. Durability is left as shipped: fsync=on,
// synchronous_commit=on, full_page_writes=on, wal_sync_method default.
var pgSettings = []string{
	"listen_addresses=",       // Unix socket only
	"max_connections=300",     // three nodes of ours hold 3 × (16 + 1)
	"shared_buffers=128MB",    // the default, stated
	"max_wal_size=1GB",        // the default, stated
	"checkpoint_timeout=5min", // the default, stated
}

// pgBinDir finds initdb and postgres: PATH first, then Debian's
// /usr/lib/postgresql/<version>/bin, newest first.
func pgBinDir() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "postgres")); err == nil {
			return filepath.Dir(p), nil
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	sort.Slice(matches, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[i]))))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(matches[j]))))
		return vi > vj
	})
	if len(matches) > 0 {
		return filepath.Dir(matches[0]), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, postgres) on PATH or under /usr/lib/postgresql; pass -pg URL")
}

// startPG starts a throwaway cluster in a new directory of the system's
// temporary directory (searchable by the postgres user, unlike the bench's
// own 0700 one), on the same disk as the SQLite files. As
// root, initdb and postgres run as the postgres user (PostgreSQL refuses
// to run as root).
func startPG() (*pgServer, error) {
	bin, err := pgBinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "chapkit-bench-pg-")
	if err != nil {
		return nil, err
	}
	var cred *syscall.Credential
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres user for the server: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown cluster dir: %w", err)
		}
	}
	data := filepath.Join(dir, "data")
	// --no-sync only skips syncing the freshly created files of initdb;
	// the server itself runs with fsync on.
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, strings.TrimSpace(string(out)))
	}
	logPath := filepath.Join(dir, "server.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{"-D", data, "-c", "unix_socket_directories=" + dir}
	for _, s := range pgSettings {
		args = append(args, "-c", s)
	}
	pg := exec.Command(filepath.Join(bin, "postgres"), args...)
	pg.Stdout, pg.Stderr = logFile, logFile
	pg.Dir = dir
	pg.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT, Setpgid: true}
	if err := pg.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s := &pgServer{cmd: pg, dir: dir}
	s.admin = (&url.URL{Scheme: "postgres", User: url.User("postgres"), Path: "/postgres",
		RawQuery: url.Values{"host": {dir}, "sslmode": {"disable"}}.Encode()}).String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			s.stop()
			return nil, fmt.Errorf("postgres did not accept connections within 30 s: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// usePG checks the server named by -pg.
func usePG(admin string) (*pgServer, error) {
	s := &pgServer{admin: admin}
	return s, s.ping()
}

func (s *pgServer) ping() error {
	db, err := sql.Open("pgx", s.admin)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.QueryRowContext(ctx, "SHOW server_version").Scan(&s.version)
}

// settings reports the durability settings in force, for the report.
func (s *pgServer) settings(ctx context.Context) map[string]string {
	out := map[string]string{}
	db, err := sql.Open("pgx", s.admin)
	if err != nil {
		return out
	}
	defer db.Close()
	for _, name := range []string{"server_version", "fsync", "synchronous_commit", "full_page_writes", "wal_sync_method", "shared_buffers", "max_connections"} {
		var v string
		if db.QueryRowContext(ctx, "SHOW "+name).Scan(&v) == nil {
			out[name] = v
		}
	}
	return out
}

// createDB makes a fresh database and returns its URL.
func (s *pgServer) createDB(ctx context.Context, name string) (string, error) {
	db, err := sql.Open("pgx", s.admin)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return "", err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	u, err := url.Parse(s.admin)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

func (s *pgServer) dropDB(name string) {
	db, err := sql.Open("pgx", s.admin)
	if err != nil {
		return
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
}

// stop shuts a throwaway cluster down (fast shutdown) and removes it.
func (s *pgServer) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	_ = os.RemoveAll(s.dir)
	s.cmd = nil
}

// serverCPU is the CPU time in seconds the throwaway cluster has used so
// far: the postmaster's own, what its exited children used (it reaps
// them, so their time lands in its cutime and cstime), and that of its
// live children (background writers, backends still connected). NaN for
// a server named by -pg, whose processes the bench cannot see.
func (s *pgServer) serverCPU() float64 {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return math.NaN()
	}
	pid := s.cmd.Process.Pid
	const ticks = 100 // USER_HZ, 100 on Linux
	total := 0.0
	if f := procStat(pid); f != nil {
		for _, i := range []int{11, 12, 13, 14} { // utime stime cutime cstime
			v, _ := strconv.ParseFloat(f[i], 64)
			total += v
		}
	} else {
		return math.NaN()
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		f := procStat(child)
		if f == nil || f[1] != strconv.Itoa(pid) {
			continue
		}
		for _, i := range []int{11, 12} {
			v, _ := strconv.ParseFloat(f[i], 64)
			total += v
		}
	}
	return total / ticks
}

// procStat returns the fields of /proc/<pid>/stat after the command name
// (field 3, the state, is index 0), or nil.
func procStat(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return nil
	}
	return f
}

// waitIdle waits (up to 5 s) until no session is connected to database
// name, so that the backends of a finished run have exited and their CPU
// time is counted.
func (s *pgServer) waitIdle(ctx context.Context, name string) {
	db, err := sql.Open("pgx", s.admin)
	if err != nil {
		return
	}
	defer db.Close()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var n int
		if db.QueryRowContext(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name).Scan(&n) != nil || n == 0 {
			return
		}
	}
}
