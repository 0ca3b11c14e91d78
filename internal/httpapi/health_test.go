package httpapi

import (
	"math"
	"testing"
	"time"
)

func TestPollInterval(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want time.Duration
	}{
		{math.NaN(), time.Second},
		{math.Inf(1), time.Hour},
		{math.Inf(-1), 10 * time.Millisecond},
		{1e308, time.Hour},
		{-5, 10 * time.Millisecond},
		{0, 10 * time.Millisecond},
		{0.5, 500 * time.Millisecond},
		{3600, time.Hour},
	} {
		if got := pollInterval(tc.in); got != tc.want {
			t.Errorf("pollInterval(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
