package shell

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// loopRate runs fn from c goroutines for window and returns completed calls
// per second.
func loopRate(tb testing.TB, c int, window time.Duration, fn func() error) float64 {
	tb.Helper()
	var n atomic.Int64
	var wg sync.WaitGroup
	stop := time.Now().Add(window)
	t0 := time.Now()
	for range c {
		wg.Go(func() {
			for time.Now().Before(stop) {
				if err := fn(); err != nil {
					tb.Error(err)
					return
				}
				n.Add(1)
			}
		})
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(t0).Seconds()
}

// BenchmarkRunVsExec compares Run("true") with a bare exec.Command("sh",
// "-c", "true") loop at the same concurrency, in alternating windows of the
// same run, and reports the ratio of their rates (ours/exec). On a shared,
// noisy machine only the ratio means anything.
func BenchmarkRunVsExec(b *testing.B) {
	ctx := context.Background()
	run := func() error { _, err := Run(ctx, "true", Options{}); return err }
	plain := func() error { return exec.Command("sh", "-c", "true").Run() }
	for _, c := range []int{2, 4, 8} {
		b.Run(fmt.Sprintf("c=%d", c), func(b *testing.B) {
			var ours, base float64
			for b.Loop() {
				base += loopRate(b, c, 250*time.Millisecond, plain)
				ours += loopRate(b, c, 250*time.Millisecond, run)
			}
			b.ReportMetric(ours/float64(b.N), "ours/s")
			b.ReportMetric(base/float64(b.N), "exec/s")
			b.ReportMetric(ours/base, "ratio")
		})
	}
}
