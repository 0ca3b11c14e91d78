package sqlitedb

import (
	"database/sql"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// copyFile copies src to dst byte for byte.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointsBesideCommits commits far fewer pages than the in-commit
// backstop and then finds the rows in the database file alone, without its
// log: only the background checkpointer can have copied them there.
func TestCheckpointsBesideCommits(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.db")
	db, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeDB(t, db)
	var backstop int
	if err := db.Raw("PRAGMA wal_autocheckpoint").Scan(&backstop).Error; err != nil {
		t.Fatal(err)
	}
	if backstop != backstopPages {
		t.Fatalf("wal_autocheckpoint = %d, want %d", backstop, backstopPages)
	}
	if err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)").Error; err != nil {
		t.Fatal(err)
	}
	const rows = 200 // a few hundred pages, well under the backstop
	pad := strings.Repeat("x", 3000)
	for i := range rows {
		if err := db.Exec("INSERT INTO t (id, v) VALUES (?, ?)", i+1, pad).Error; err != nil {
			t.Fatal(err)
		}
	}

	// Poll: a copy of the database file without its log must hold every row.
	deadline := time.Now().Add(10 * time.Second)
	for n := 0; ; n++ {
		snap := filepath.Join(dir, "snap"+string(rune('a'+n%26))+".db")
		copyFile(t, path, snap)
		got, err := countRows(snap)
		if err == nil && got == rows {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("database file without its log holds %d rows (err %v) after 10 s, want %d", got, err, rows)
		}
		_ = os.Remove(snap)
		time.Sleep(20 * time.Millisecond) // polling interval, not synchronisation
	}
}

// countRows opens a plain copy of a database read-only and counts t's rows.
func countRows(path string) (int, error) {
	c, err := sql.Open("sqlite3", "file:"+path+"?mode=ro&immutable=1")
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var n int
	err = c.QueryRow("SELECT count(*) FROM t").Scan(&n)
	return n, err
}

// TestCloseEndsTheCheckpointer: the log is removed when the last
// connection closes, which happens only if the checkpointer's connection
// closed first.
func TestCloseEndsTheCheckpointer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	db, err := Open(path, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY)").Error; err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + "-wal"); err != nil {
		t.Fatalf("no log while open: %v", err)
	}
	closeDB(t, db)
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("log still there after Close: %v", err)
	}
}

func TestWALTarget(t *testing.T) {
	got := map[string]bool{}
	for _, dsn := range []string{
		"file:/d/a.db?_journal_mode=WAL&_synchronous=NORMAL",
		"file:/d/a.db?_journal_mode=wal",
		"file::memory:?_synchronous=NORMAL",
		"file:/d/a.db",
		"file:/d/a.db?_journal_mode=DELETE",
	} {
		got[dsn] = walTarget(dsn)
	}
	want := map[string]bool{
		"file:/d/a.db?_journal_mode=WAL&_synchronous=NORMAL": true,
		"file:/d/a.db?_journal_mode=wal":                     true,
		"file::memory:?_synchronous=NORMAL":                  false,
		"file:/d/a.db":                                       false,
		"file:/d/a.db?_journal_mode=DELETE":                  false,
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatal(d)
	}
}
