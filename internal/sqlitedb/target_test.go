package sqlitedb

import (
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestPath pins the accepted spellings of a database target.
func TestPath(t *testing.T) {
	tests := []struct {
		target string
		path   string
		memory bool
	}{
		{"", "", true},
		{":memory:", "", true},
		{"  :memory:  ", "", true},
		{"file::memory:?mode=memory&cache=shared", "", true},
		{"tasks.db", "tasks.db", false},
		{"/abs/tasks.db", "/abs/tasks.db", false},
		{"sqlite:///tasks.db", "tasks.db", false},
		{"sqlite:////abs/tasks.db", "/abs/tasks.db", false},
		{"sqlite+aiosqlite:///tasks.db", "tasks.db", false},
		{"sqlite+aiosqlite:////abs/tasks.db", "/abs/tasks.db", false},
		{"file:tasks.db", "tasks.db", false},
		{"file:tasks.db?_busy_timeout=1", "tasks.db", false},
		{"sqlite:///data/tasks.db?mode=rwc", "data/tasks.db", false},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := []any{Path(tt.target), IsMemory(tt.target)}
			if diff := cmp.Diff([]any{tt.path, tt.memory}, got); diff != "" {
				t.Errorf("Path, IsMemory (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOpenTargets opens real databases under each spelling that names a
// file and checks the file appears where the spelling says, with the
// settings a service relies on.
func TestOpenTargets(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name   string
		target string
		file   string // expected database file; "" for memory
	}{
		{"plain path", filepath.Join(dir, "a.db"), filepath.Join(dir, "a.db")},
		{"sqlite URL, absolute", "sqlite:///" + filepath.Join(dir, "b.db"), filepath.Join(dir, "b.db")},
		{"python URL, absolute", "sqlite+aiosqlite:///" + filepath.Join(dir, "c.db"), filepath.Join(dir, "c.db")},
		{"file URI", "file:" + filepath.Join(dir, "d.db"), filepath.Join(dir, "d.db")},
		{"memory", ":memory:", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(tt.target, Config{})
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.target, err)
			}
			sqlDB, err := db.DB()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sqlDB.Close() })
			var fk int
			var journal string
			if err := db.Raw("PRAGMA foreign_keys").Scan(&fk).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Raw("PRAGMA journal_mode").Scan(&journal).Error; err != nil {
				t.Fatal(err)
			}
			var files []string
			if tt.file != "" {
				files, _ = filepath.Glob(tt.file)
			}
			wantJournal := "memory"
			var wantFiles []string
			if tt.file != "" {
				wantJournal, wantFiles = "wal", []string{tt.file}
			}
			got := []any{fk, journal, files}
			if diff := cmp.Diff([]any{1, wantJournal, wantFiles}, got); diff != "" {
				t.Errorf("foreign_keys, journal_mode, files (-want +got):\n%s", diff)
			}
		})
	}
}

// TestOpenRejectsUnknownSynchronous checks the synchronous setting is
// validated rather than passed to SQLite as is.
func TestOpenRejectsUnknownSynchronous(t *testing.T) {
	tests := []struct {
		sync string
		ok   bool
	}{{"", true}, {"normal", true}, {"FULL", true}, {"sometimes", false}}
	for _, tt := range tests {
		t.Run(tt.sync, func(t *testing.T) {
			db, err := Open(filepath.Join(t.TempDir(), "s.db"), Config{Synchronous: tt.sync})
			if err == nil {
				sqlDB, _ := db.DB()
				_ = sqlDB.Close()
			}
			if got := err == nil; got != tt.ok {
				t.Errorf("Open with synchronous %q: error = %v, want ok = %v", tt.sync, err, tt.ok)
			}
		})
	}
}
