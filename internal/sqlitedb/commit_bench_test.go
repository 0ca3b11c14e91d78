package sqlitedb

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkCommitLatency times small write transactions, one after
// another, as the job path makes them, and reports the tail: with
// checkpoints inside the commits every 1,000, 250 or 100 pages (SQLite's
// default is 1,000), and with the checkpointer beside them
// (autocheckpoint=0 names that case).
//
//	go test -run '^$' -bench CommitLatency -benchtime 20000x ./internal/sqlitedb/
func BenchmarkCommitLatency(b *testing.B) {
	for _, ac := range []int{1000, 250, 100, 0} {
		b.Run(fmt.Sprintf("autocheckpoint=%d", ac), func(b *testing.B) {
			backgroundCheckpoints = ac == 0
			defer func() { backgroundCheckpoints = true }()
			db, err := Open(filepath.Join(b.TempDir(), "c.db"), Config{})
			if err != nil {
				b.Fatal(err)
			}
			sqlDB, _ := db.DB()
			defer sqlDB.Close()
			if ac > 0 {
				if err := db.Exec(fmt.Sprintf("PRAGMA wal_autocheckpoint=%d", ac)).Error; err != nil {
					b.Fatal(err)
				}
			}
			if err := db.Exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, w TEXT)").Error; err != nil {
				b.Fatal(err)
			}
			if err := db.Exec("CREATE INDEX t_w ON t (w)").Error; err != nil {
				b.Fatal(err)
			}
			pad := fmt.Sprintf("%0400d", 0)
			lat := make([]time.Duration, b.N)
			b.ResetTimer()
			for i := range b.N {
				t0 := time.Now()
				tx, err := sqlDB.Begin()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Exec("INSERT INTO t (v, w) VALUES (?, ?)", pad, fmt.Sprint(i)); err != nil {
					b.Fatal(err)
				}
				if _, err := tx.Exec("UPDATE t SET w = ? WHERE id = ?", pad, i/2+1); err != nil {
					b.Fatal(err)
				}
				if err := tx.Commit(); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
			b.ReportMetric(q(0.5), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p99.9-ms")
			b.ReportMetric(q(1), "max-ms")
		})
	}
}
