package gormlog

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestTraceRendersOnlyWhatItLogs: a fast statement that succeeded, or
// found no record, is neither rendered nor logged; a failed or slow one
// is rendered once and logged with its SQL; at level Info every statement
// is.
func TestTraceRendersOnlyWhatItLogs(t *testing.T) {
	var buf bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&buf, nil)))
	rendered := 0
	fc := func(sql string) func() (string, int64) {
		return func() (string, int64) { rendered++; return sql, 1 }
	}
	now := time.Now()
	l.Trace(t.Context(), now, fc("SELECT fast"), nil)
	l.Trace(t.Context(), now, fc("SELECT missing"), gorm.ErrRecordNotFound)
	if rendered != 0 || buf.Len() != 0 {
		t.Fatalf("quiet statements: rendered %d, logged %q; want nothing", rendered, buf.String())
	}
	l.Trace(t.Context(), now, fc("SELECT broken"), errors.New("disk I/O error"))
	l.Trace(t.Context(), now.Add(-2*SlowThreshold), fc("SELECT slow"), nil)
	l.LogMode(logger.Info).Trace(t.Context(), now, fc("SELECT info"), nil)
	l.LogMode(logger.Silent).Trace(t.Context(), now, fc("SELECT silent"), errors.New("x"))
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		_, sql, _ := strings.Cut(line, "trace.sql=")
		sql, _, _ = strings.Cut(sql, " trace.")
		got = append(got, strings.Trim(sql, `"`))
	}
	if d := cmp.Diff([]string{"SELECT broken", "SELECT slow", "SELECT info"}, got); d != "" {
		t.Errorf("logged statements (-want +got):\n%s\n%s", d, buf.String())
	}
	if rendered != 3 {
		t.Errorf("rendered %d statements, want 3", rendered)
	}
	if New(nil) != logger.Discard {
		t.Error("New(nil) is not the discarding logger")
	}
}
