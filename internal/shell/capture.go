package shell

import (
	"io"
	"strings"
	"unicode/utf8"
)

// readChunk is the size of each read from an output pipe.
const readChunk = 32 << 10

// capture keeps the first max bytes of a stream and counts the rest as
// truncation. It is not safe for concurrent use: one reader goroutine fills
// it, and the owner reads it only after that goroutine has finished.
type capture struct {
	max       int64
	buf       []byte
	truncated bool
}

// drain reads r until EOF or an error (such as a passed read deadline),
// keeping what fits. It never stops early on the cap: a writer blocked on a
// full pipe would otherwise never exit.
func (c *capture) drain(r io.Reader) {
	chunk := make([]byte, readChunk)
	for {
		n, err := r.Read(chunk)
		c.add(chunk[:n])
		if err != nil {
			return
		}
	}
}

// add appends what fits of p under the cap. The buffer grows by doubling but
// never past max, so memory stays within the cap however large the stream.
func (c *capture) add(p []byte) {
	if room := c.max - int64(len(c.buf)); int64(len(p)) > room {
		p = p[:room]
		c.truncated = true
	}
	if len(p) == 0 {
		return
	}
	if need := len(c.buf) + len(p); need > cap(c.buf) {
		grown := make([]byte, len(c.buf), min(max(2*cap(c.buf), need, 512), int(c.max)))
		copy(grown, c.buf)
		c.buf = grown
	}
	c.buf = append(c.buf, p...)
}

// text returns the captured bytes as valid UTF-8. When the cap cut the
// stream inside a multi-byte character, the partial character is dropped
// rather than turned into a U+FFFD the command never wrote.
func (c *capture) text() string {
	b := c.buf
	if c.truncated {
		b = trimPartialRune(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// trimPartialRune drops a trailing incomplete UTF-8 sequence from b.
func trimPartialRune(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return b[:i]
			}
			break
		}
	}
	return b
}
