// Package sqlitedb opens SQLite databases the way every chapkit service
// needs them: the same pragmas on every connection (foreign keys on, a
// busy timeout, the synchronous level, memory temp store, a 64 MB cache),
// WAL for files with checkpoints run beside the commits, and one connection
// so writers never meet "database is locked".
package sqlitedb

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/gormlog"
)

// driverName is a mattn driver registered with a connect hook, so the
// pragmas that have no DSN parameter apply to every connection, including
// one the pool opens again after an error.
const driverName = "sqlite3_chapkit"

var registerOnce sync.Once

func register() {
	registerOnce.Do(func() {
		sql.Register(driverName, detachedDriver{&sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
			for _, p := range []string{
				"PRAGMA temp_store=MEMORY",
				"PRAGMA cache_size=-64000",
				"PRAGMA mmap_size=134217728",
			} {
				if _, err := c.Exec(p, nil); err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			return nil
		}}})
	})
}

// DefaultBusyTimeout is how long a statement waits by default for a write
// lock held by another process: 5 s.
//
// Inside the service writes never meet each other (one connection, queued
// in Go), so the wait only matters when an outside process (a backup, a
// migration, a second service on the same file) holds the lock. While a
// statement waits, it holds the one connection, and every other request
// queues behind it; a long wait therefore stalls the whole API. 5 s rides
// out the short write transactions other programs usually make, and past
// it the request fails with SQLITE_BUSY, which problem.Database turns
// into a 503 with Retry-After, so clients learn within seconds that they
// should retry, instead of hanging for half a minute.
const DefaultBusyTimeout = 5 * time.Second

// Config tunes a database opened by [Open]. The zero value is the default.
type Config struct {
	// Synchronous is the SQLite synchronous mode: "NORMAL" (default; a
	// power cut may lose the last commits but never corrupts) or "FULL".
	Synchronous string
	// BusyTimeout is how long a statement waits for a lock another
	// process holds before it fails with SQLITE_BUSY; zero or less means
	// [DefaultBusyTimeout].
	BusyTimeout time.Duration
	// Logger receives GORM's slow-query and error logs; nil discards them.
	Logger *slog.Logger
}

// IsMemory reports whether target names an in-memory database: "",
// ":memory:", or a "file:" URI whose path is ":memory:" or whose query
// has mode=memory. A plain path never does, whatever it contains.
func IsMemory(target string) bool {
	_, memory, err := parseTarget(target)
	return err == nil && memory
}

// Path returns the file a target names, by the rules of [Open], or ""
// for an in-memory database or a malformed "file:" URI.
func Path(target string) string {
	p, memory, err := parseTarget(target)
	if err != nil || memory {
		return ""
	}
	return p
}

// parseTarget maps a target to a file path by the rules listed on [Open].
func parseTarget(target string) (path string, memory bool, err error) {
	t := strings.TrimSpace(target)
	if t == "" || t == ":memory:" {
		return "", true, nil
	}
	for _, scheme := range []string{"sqlite+aiosqlite://", "sqlite://"} {
		if rest, ok := strings.CutPrefix(t, scheme); ok {
			// sqlite:///rel.db is relative, sqlite:////abs.db is absolute.
			rest = strings.TrimPrefix(rest, "/")
			rest, _, _ = strings.Cut(rest, "?")
			if rest == "" || rest == ":memory:" {
				return "", true, nil
			}
			return rest, false, nil
		}
	}
	rest, ok := strings.CutPrefix(t, "file:")
	if !ok {
		return target, false, nil // untrimmed: spaces at either end are part of a plain name
	}
	rest, _, _ = strings.Cut(rest, "#")
	rest, query, _ := strings.Cut(rest, "?")
	if auth, ok := strings.CutPrefix(rest, "//"); ok {
		host, p, _ := strings.Cut(auth, "/")
		if host != "" && host != "localhost" {
			return "", false, fmt.Errorf("sqlite URI %q: authority %q is not empty or localhost", target, host)
		}
		rest = "/" + p
	}
	p, err := url.PathUnescape(rest)
	if err != nil {
		return "", false, fmt.Errorf("sqlite URI %q: %w", target, err)
	}
	q, _ := url.ParseQuery(query) // a malformed query only loses its own keys
	if p == "" || p == ":memory:" || q.Get("mode") == "memory" {
		return "", true, nil
	}
	return p, false, nil
}

// fileURI renders path as an SQLite "file:" URI that SQLite decodes back
// to exactly path: every byte but unreserved characters and "/" is
// percent-escaped, so "?", "#" and "%" in a name cannot start a query, a
// fragment or an escape (mattn/go-sqlite3 also splits its own parameters
// off at the first "?"). An absolute path gets the empty authority
// ("file:///abs"), so a name starting with "//" is not read as a host.
func fileURI(path string) string {
	var b strings.Builder
	b.WriteString("file:")
	if strings.HasPrefix(path, "/") {
		b.WriteString("//")
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '.', c == '_', c == '~', c == '/':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Open opens (creating when missing) the SQLite database named by target.
// Each spelling has one rule, so any file name can be reached:
//
//   - "" and ":memory:": a private in-memory database.
//   - "sqlite:///rel.db", "sqlite:////abs.db" and the same with
//     "sqlite+aiosqlite://" (the SQLAlchemy URLs chapkit takes): the text
//     after the third slash up to the first "?" (which starts SQLAlchemy's
//     query), taken literally as SQLAlchemy does: no percent decoding, and
//     "#" is part of the name.
//   - "file:...": an SQLite URI (https://sqlite.org/uri.html): an optional
//     empty or "localhost" authority, then the path up to "?" or "#", with
//     percent escapes decoded. Its query is ignored except mode=memory.
//     A malformed URI is an error.
//   - anything else: a plain path, the file opened byte for byte ("#",
//     "?", "%", spaces and all). A plain path starting with "file:" is
//     written "./file:...".
func Open(target string, cfg Config) (*gorm.DB, error) {
	register()
	sync := strings.ToUpper(cfg.Synchronous)
	if sync == "" {
		sync = "NORMAL"
	}
	switch sync {
	case "OFF", "NORMAL", "FULL", "EXTRA":
	default:
		return nil, fmt.Errorf("sqlite synchronous mode %q: use NORMAL or FULL", cfg.Synchronous)
	}
	busy := cfg.BusyTimeout
	if busy <= 0 {
		busy = DefaultBusyTimeout
	}
	q := url.Values{}
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", sync)
	q.Set("_busy_timeout", fmt.Sprint(busy.Milliseconds()))
	// Immediate transactions take the write lock at BEGIN, so a
	// transaction never fails half-way when it turns from reading to
	// writing while another connection (another process) writes.
	q.Set("_txlock", "immediate")
	// Keep prepared statements on the connection: the job path runs the
	// same few statements thousands of times a second, and compiling one
	// costs more than running it.
	q.Set("_stmt_cache_size", "128")

	path, memory, err := parseTarget(target)
	if err != nil {
		return nil, err
	}
	var dsn string
	if memory {
		dsn = "file::memory:?" + q.Encode()
	} else {
		q.Set("_journal_mode", "WAL")
		dsn = fileURI(path) + "?" + q.Encode()
	}
	gl := gormlog.New(cfg.Logger)
	db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: driverName, DSN: dsn}), &gorm.Config{
		Logger:         gl,
		TranslateError: true,
		// GORM's PrepareStmt is off on purpose: its cache prepares a new
		// statement while holding a lock, on whatever connection it can
		// get; with the one connection held by a transaction that itself
		// needs to prepare, the two wait on each other for ever. mattn's
		// driver keeps a statement cache of its own per connection.
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		// Every write chapkit issues is a single statement or an explicit
		// transaction; GORM's implicit BEGIN/COMMIT around each would
		// double the round trips on the job path for nothing.
		SkipDefaultTransaction: true,
	})
	if err != nil {
		return nil, fmt.Errorf("open sqlite %q: %w", target, err)
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// One connection: SQLite has one writer at a time anyway, and queueing
	// in Go is fairer and faster than SQLite's busy-wait sleeps. For
	// :memory: it is also what keeps the data: every new connection would
	// open a fresh, empty database, so the one connection must never idle
	// out either.
	sqlDB.SetMaxOpenConns(1)
	sqlDB.SetMaxIdleConns(1)
	sqlDB.SetConnMaxLifetime(0)
	sqlDB.SetConnMaxIdleTime(0)
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open sqlite %q: %w", target, err)
	}
	return db, nil
}
