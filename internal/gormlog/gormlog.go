// Package gormlog is the GORM logger chapkit's databases use: GORM's slog
// logger at level Warn (errors and statements slower than a second), made
// cheap for the statements it does not log.
//
// GORM's slog logger renders every statement's SQL with its values before
// it decides whether to log it. On the job path that is most of the cost of
// a statement GORM runs (an artifact batch renders every row's JSON), for a
// line that is then dropped. Trace here decides first, with the same rules,
// and renders only what it logs.
package gormlog

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SlowThreshold is how long a statement runs before it is logged as slow:
// 1 s.
const SlowThreshold = time.Second

// New returns the logger for l: errors other than "record not found" and
// statements slower than [SlowThreshold] are logged at Error and Warn; no
// other statement is rendered. A nil l discards everything.
func New(l *slog.Logger) logger.Interface {
	if l == nil {
		return logger.Discard
	}
	inner := logger.NewSlogLogger(l, logger.Config{SlowThreshold: SlowThreshold, LogLevel: logger.Warn, IgnoreRecordNotFoundError: true})
	return quiet{Interface: inner, level: logger.Warn}
}

// quiet passes to the slog logger only the statements it would log.
type quiet struct {
	logger.Interface
	level logger.LogLevel
}

func (q quiet) LogMode(level logger.LogLevel) logger.Interface {
	return quiet{Interface: q.Interface.LogMode(level), level: level}
}

func (q quiet) Trace(ctx context.Context, begin time.Time, fc func() (string, int64), err error) {
	if q.level <= logger.Silent {
		return
	}
	failed := err != nil && !errors.Is(err, gorm.ErrRecordNotFound)
	if !failed && q.level < logger.Info && time.Since(begin) <= SlowThreshold {
		return // the slog logger would render the statement and drop it
	}
	q.Interface.Trace(ctx, begin, fc, err)
}
