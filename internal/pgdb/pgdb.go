// Package pgdb opens PostgreSQL databases for chapkit through GORM's
// PostgreSQL driver (pgx v5 under it).
package pgdb

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/chapkit-go/chapkit/internal/gormlog"
)

// Config tunes a database opened by [Open]. The zero value is the default.
type Config struct {
	// MaxOpenConns caps the pool; 0 means the default 16. One more
	// connection, outside the pool's count, is held by each node's
	// notification listener.
	MaxOpenConns int
	// Logger receives GORM's slow-query and error logs; nil discards them.
	Logger *slog.Logger
}

// DefaultMaxOpenConns is the pool size when Config.MaxOpenConns is 0.
const DefaultMaxOpenConns = 16

// IsURL reports whether target names a PostgreSQL database:
// "postgres://…" or "postgresql://…".
func IsURL(target string) bool {
	t := strings.ToLower(strings.TrimSpace(target))
	return strings.HasPrefix(t, "postgres://") || strings.HasPrefix(t, "postgresql://")
}

// Open connects to the PostgreSQL database at url and checks that it
// answers.
func Open(url string, cfg Config) (*gorm.DB, error) {
	gl := gormlog.New(cfg.Logger)
	db, err := gorm.Open(postgres.New(postgres.Config{DSN: strings.TrimSpace(url)}), Options(gl))
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	n := cfg.MaxOpenConns
	if n <= 0 {
		n = DefaultMaxOpenConns
	}
	sqlDB.SetMaxOpenConns(n)
	sqlDB.SetMaxIdleConns(n)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := sqlDB.Ping(); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open postgres: %w", redact(err, url))
	}
	return db, nil
}

// Options are the GORM settings chapkit uses on PostgreSQL; they match the
// SQLite ones, so both engines behave the same.
func Options(gl logger.Interface) *gorm.Config {
	return &gorm.Config{
		Logger:         gl,
		TranslateError: true,
		// Stored times are microseconds in UTC on both engines, so a value
		// read back equals the one written.
		NowFunc: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		// Every write is a single statement or an explicit transaction.
		SkipDefaultTransaction: true,
	}
}

// redact keeps a password in the URL out of error texts, which end up in
// logs.
func redact(err error, url string) error {
	msg := err.Error()
	if i := strings.Index(url, "://"); i >= 0 {
		rest := url[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if colon := strings.Index(rest[:at], ":"); colon >= 0 {
				pw := rest[colon+1 : at]
				if pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
				}
			}
		}
	}
	return fmt.Errorf("%s", msg)
}

// DSNOf returns the connection string of a GORM PostgreSQL dialector, or
// "" for any other dialector or one built on an existing connection.
func DSNOf(d gorm.Dialector) string {
	switch p := d.(type) {
	case *postgres.Dialector:
		if p.Config != nil {
			return p.Config.DSN
		}
	case postgres.Dialector:
		if p.Config != nil {
			return p.Config.DSN
		}
	}
	return ""
}
