package shell

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The wanted values are what Python's bytes.decode("utf-8", errors="replace")
// returns for the same bytes.
var pythonReplaceCases = []struct{ in, want string }{
	{"", ""},
	{"plain ascii", "plain ascii"},
	{"ok \xc0\xff end", "ok \ufffd\ufffd end"},
	{"\xe2\x82a", "\ufffda"},
	{"\xc0\xff", "\ufffd\ufffd"},
	{"\xed\xa0\x80", "\ufffd\ufffd\ufffd"},
	{"\xf0\x9f\x98", "\ufffd"},
	{"\xe0\x80", "\ufffd\ufffd"},
	{"\xf4\x90\x80\x80", "\ufffd\ufffd\ufffd\ufffd"},
	{"\xf0\x9f\x98\xe2\x82\xac", "\ufffd€"},
	{"\x80\x80a", "\ufffd\ufffda"},
	{"\xef\xbf\xbd", "\ufffd"},
	{"é€😀", "é€😀"},
	{"a\xffb", "a\ufffdb"},
}

func TestDecodeReplaceMatchesPython(t *testing.T) {
	for _, tc := range pythonReplaceCases {
		if diff := cmp.Diff(tc.want, decodeReplace([]byte(tc.in))); diff != "" {
			t.Errorf("decodeReplace(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

// TestCaptureDecodesAcrossChunks feeds each case one byte per read, so every
// sequence crosses a read boundary.
func TestCaptureDecodesAcrossChunks(t *testing.T) {
	for _, tc := range pythonReplaceCases {
		c := capture{max: 1 << 10}
		for i := range len(tc.in) {
			c.add([]byte{tc.in[i]})
		}
		if diff := cmp.Diff(tc.want, c.text()); diff != "" {
			t.Errorf("capture of %q mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}

func TestCaptureCutKeepsCharactersWhole(t *testing.T) {
	// max 8: head 4 bytes, tail 4 bytes. "€" is 3 bytes.
	tests := []struct{ name, in, want string }{
		{"head cut inside a character", "ab€" + strings.Repeat("x", 20) + "yz€", "ab\n" + marker(24) + "z€"},
		{"tail starts inside a character", "abcd" + strings.Repeat("x", 10) + "€€", "abcd\n" + marker(13) + "€"},
		{"invalid bytes at the edges stay replaced", "ab\xff\xff" + strings.Repeat("x", 10) + "\xff\xffyz", "ab\ufffd\ufffd\n" + marker(10) + "\ufffd\ufffdyz"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, step := range []int{1, 3, len(tc.in)} {
				c := capture{max: 8}
				for i := 0; i < len(tc.in); i += step {
					c.add([]byte(tc.in[i:min(i+step, len(tc.in))]))
				}
				if diff := cmp.Diff(tc.want, c.text()); diff != "" {
					t.Errorf("step %d: text() mismatch (-want +got):\n%s", step, diff)
				}
				if !c.truncated {
					t.Errorf("step %d: truncated = false, want true", step)
				}
			}
		})
	}
}
