package sqlitedb

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
)

func closeDB(t *testing.T, db *gorm.DB) {
	t.Helper()
	sqlDB, err := db.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlDB.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		name       string
		target     string
		wantPath   string
		wantMemory bool
		wantErr    bool
	}{
		{"empty", "", "", true, false},
		{"memory", ":memory:", "", true, false},
		{"plain relative", "tasks.db", "tasks.db", false, false},
		{"plain with hash", "/data/run#1/tasks.db", "/data/run#1/tasks.db", false, false},
		{"plain with question mark", "/data/a?b=1/tasks.db", "/data/a?b=1/tasks.db", false, false},
		{"plain with percent escape", "/data/a%20b/tasks.db", "/data/a%20b/tasks.db", false, false},
		{"plain with spaces", "/data/my dir/tasks.db", "/data/my dir/tasks.db", false, false},
		{"plain with mode=memory in the name", "/data/mode=memory.db", "/data/mode=memory.db", false, false},
		{"plain starting with ./file:", "./file:x.db", "./file:x.db", false, false},
		{"sqlite URL relative", "sqlite:///tasks.db", "tasks.db", false, false},
		{"sqlite URL absolute", "sqlite:////data/tasks.db", "/data/tasks.db", false, false},
		{"sqlite URL keeps hash", "sqlite:////data/run#1/tasks.db", "/data/run#1/tasks.db", false, false},
		{"sqlite URL is not decoded", "sqlite:////data/a%20b.db", "/data/a%20b.db", false, false},
		{"sqlite URL query dropped", "sqlite:////data/t.db?check_same_thread=false", "/data/t.db", false, false},
		{"aiosqlite URL", "sqlite+aiosqlite:///./tasks.db", "./tasks.db", false, false},
		{"sqlite URL memory", "sqlite://", "", true, false},
		{"sqlite URL memory spelled", "sqlite:///:memory:", "", true, false},
		{"file URI relative", "file:tasks.db", "tasks.db", false, false},
		{"file URI decoded", "file:/data/run%231/a%20b.db", "/data/run#1/a b.db", false, false},
		{"file URI empty authority", "file:///data/t.db?cache=shared", "/data/t.db", false, false},
		{"file URI localhost", "file://localhost/data/t.db", "/data/t.db", false, false},
		{"file URI fragment dropped", "file:/data/t.db#frag", "/data/t.db", false, false},
		{"file URI memory mode", "file:x.db?mode=memory&cache=shared", "", true, false},
		{"file URI memory name", "file::memory:", "", true, false},
		{"file URI remote host", "file://host/data/t.db", "", false, true},
		{"file URI bad escape", "file:/data/%zz.db", "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path, memory, err := parseTarget(tc.target)
			if path != tc.wantPath || memory != tc.wantMemory || (err != nil) != tc.wantErr {
				t.Errorf("parseTarget(%q) = %q, %v, %v; want %q, %v, error %v",
					tc.target, path, memory, err, tc.wantPath, tc.wantMemory, tc.wantErr)
			}
		})
	}
}

// TestOpenUsesTheGivenPath opens databases in directories whose names hold
// URI syntax and checks that each file is created at exactly the path
// given and that no two paths share a database.
func TestOpenUsesTheGivenPath(t *testing.T) {
	root := t.TempDir()
	names := []string{"run#1", "run#2", "q?x=1", "q?x=2", "pct%20", "pct ", "two  spaces", "ünïcödé", "file:odd", "%"}
	var paths []string
	for _, name := range names {
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Join(dir, "tasks.db"))
	}
	for _, p := range paths {
		db, err := Open(p, Config{})
		if err != nil {
			t.Fatalf("Open(%q): %v", p, err)
		}
		if err := db.Exec("CREATE TABLE marks (path TEXT)").Error; err != nil {
			t.Fatalf("create in %q: %v", p, err)
		}
		if err := db.Exec("INSERT INTO marks VALUES (?)", p).Error; err != nil {
			t.Fatalf("insert in %q: %v", p, err)
		}
		closeDB(t, db)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("database file %q: %v", p, err)
		}
		db, err := Open(p, Config{})
		if err != nil {
			t.Fatalf("reopen %q: %v", p, err)
		}
		var got []string
		if err := db.Raw("SELECT path FROM marks").Scan(&got).Error; err != nil {
			t.Fatalf("read %q: %v", p, err)
		}
		closeDB(t, db)
		if diff := cmp.Diff([]string{p}, got); diff != "" {
			t.Errorf("rows of %q mismatch (-want +got):\n%s", p, diff)
		}
	}
	// Nothing was created beside the directories (such as a file "run"
	// cut off at the "#").
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{"%", "file:odd", "pct ", "pct%20", "q?x=1", "q?x=2", "run#1", "run#2", "two  spaces", "ünïcödé"}
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("entries of the temp dir mismatch (-want +got):\n%s", diff)
	}
}

// TestOpenURLSpellings checks that the URL spellings reach the same file
// as the plain path they name.
func TestOpenURLSpellings(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run#1 a%20b")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "tasks.db")
	db, err := Open(p, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Exec("CREATE TABLE marks (n INTEGER)").Error; err != nil {
		t.Fatal(err)
	}
	closeDB(t, db)
	for _, target := range []string{
		"sqlite:///" + p,
		"sqlite+aiosqlite:///" + p,
		"file://localhost" + fileURI(p)[len("file://"):],
		fileURI(p),
	} {
		db, err := Open(target, Config{})
		if err != nil {
			t.Fatalf("Open(%q): %v", target, err)
		}
		var n int
		if err := db.Raw("SELECT count(*) FROM sqlite_master WHERE name = 'marks'").Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		closeDB(t, db)
		if n != 1 {
			t.Errorf("Open(%q) did not reach %q", target, p)
		}
	}
}
