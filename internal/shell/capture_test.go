package shell

import (
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestCapture(t *testing.T) {
	tests := []struct {
		name          string
		max           int64
		writes        []string
		wantText      string
		wantTruncated bool
	}{
		{name: "empty", max: 4, writes: nil, wantText: "", wantTruncated: false},
		{name: "under cap", max: 4, writes: []string{"ab"}, wantText: "ab", wantTruncated: false},
		{name: "exactly cap", max: 4, writes: []string{"ab", "cd"}, wantText: "abcd", wantTruncated: false},
		{name: "over cap in one write", max: 4, writes: []string{"abcdef"}, wantText: "abcd", wantTruncated: true},
		{name: "over cap across writes", max: 4, writes: []string{"abc", "de", "f"}, wantText: "abcd", wantTruncated: true},
		{name: "invalid bytes replaced", max: 10, writes: []string{"a\xffb"}, wantText: "a\ufffdb", wantTruncated: false},
		{name: "cut character dropped", max: 3, writes: []string{"ab€"}, wantText: "ab", wantTruncated: true},
		{name: "whole character kept", max: 5, writes: []string{"ab€x"}, wantText: "ab€", wantTruncated: true},
		{name: "incomplete at end without cut", max: 10, writes: []string{"ab\xe2\x82"}, wantText: "ab\ufffd", wantTruncated: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := capture{max: tc.max}
			for _, w := range tc.writes {
				c.add([]byte(w))
			}
			if diff := cmp.Diff(tc.wantText, c.text()); diff != "" {
				t.Errorf("text() mismatch (-want +got):\n%s", diff)
			}
			if c.truncated != tc.wantTruncated {
				t.Errorf("truncated = %t, want %t", c.truncated, tc.wantTruncated)
			}
			if int64(cap(c.buf)) > tc.max {
				t.Errorf("cap(buf) = %d, want <= %d", cap(c.buf), tc.max)
			}
		})
	}
}

func TestCaptureDrainStaysBounded(t *testing.T) {
	const limit = 100_000
	c := capture{max: limit}
	c.drain(iotest.HalfReader(strings.NewReader(strings.Repeat("z", 1_000_000))))
	if len(c.buf) != limit || !c.truncated {
		t.Errorf("len(buf), truncated = %d, %t; want %d, true", len(c.buf), c.truncated, limit)
	}
	if cap(c.buf) > limit {
		t.Errorf("cap(buf) = %d, want <= %d", cap(c.buf), limit)
	}
}
