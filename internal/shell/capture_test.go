package shell

import (
	"fmt"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func marker(n int) string { return fmt.Sprintf(droppedMarker, n) }

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
		{name: "over cap in one write", max: 4, writes: []string{"abcdef"}, wantText: "ab\n" + marker(2) + "ef", wantTruncated: true},
		{name: "over cap across writes", max: 4, writes: []string{"abc", "de", "f"}, wantText: "ab\n" + marker(2) + "ef", wantTruncated: true},
		{name: "ring wraps many times", max: 6, writes: []string{"abc", "12", "345", "6", "7890", "XY", "Z"}, wantText: "abc\n" + marker(10) + "XYZ", wantTruncated: true},
		{name: "head ending in a newline gets no extra one", max: 4, writes: []string{"a\nxxxxxxxxyz"}, wantText: "a\n" + marker(8) + "yz", wantTruncated: true},
		{name: "invalid bytes replaced", max: 10, writes: []string{"a\xffb"}, wantText: "a\ufffdb", wantTruncated: false},
		{name: "incomplete at end without cut", max: 10, writes: []string{"ab\xe2\x82"}, wantText: "ab\ufffd", wantTruncated: false},
		{name: "odd cap", max: 5, writes: []string{"abcdefgh"}, wantText: "ab\n" + marker(3) + "fgh", wantTruncated: true},
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
			if got := int64(cap(c.head) + cap(c.ring)); got > tc.max {
				t.Errorf("buffers hold %d bytes, want <= %d", got, tc.max)
			}
		})
	}
}

func TestCaptureDrainStaysBounded(t *testing.T) {
	const limit = 100_000
	c := capture{max: limit}
	c.drain(iotest.HalfReader(strings.NewReader(strings.Repeat("z", 1_000_000)+"last line\n")), nil)
	if !c.truncated {
		t.Error("truncated = false, want true")
	}
	if got := cap(c.head) + cap(c.ring); got > limit {
		t.Errorf("buffers hold %d bytes, want <= %d", got, limit)
	}
	text := c.text()
	if !strings.HasSuffix(text, "last line\n") {
		t.Errorf("text ends with %q, want the last line kept", text[len(text)-20:])
	}
	if !strings.Contains(text, marker(1_000_010-limit)) {
		t.Errorf("text has no marker for %d dropped bytes", 1_000_010-limit)
	}
}
