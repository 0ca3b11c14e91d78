package shell

import (
	"fmt"
	"io"
	"sync"
)

// readChunk is the size of each read from an output pipe.
const readChunk = 32 << 10

// chunks holds read buffers, so a job costs no 64 KiB of fresh, zeroed
// memory for the reads of its two streams.
var chunks = sync.Pool{New: func() any { return new([readChunk]byte) }}

// capture keeps at most max bytes of a stream: the first half (the head)
// and the most recent rest (the tail, in a ring buffer), and counts what
// falls in between. Keeping the tail matters because the last lines of a
// failing command usually say what went wrong. It is not safe for
// concurrent use: one reader goroutine fills it, and the owner reads it only
// after that goroutine has finished.
type capture struct {
	max int64

	head []byte // the first headMax bytes, grown as they arrive

	// ring holds the tail: up to tailMax bytes, allocated when the head is
	// full. Once full, start is the position of the oldest byte.
	ring  []byte
	start int
	// lookbehind is up to the last 3 bytes pushed out of the ring, so the
	// tail can be decoded from a character boundary.
	lookbehind []byte

	total     int64 // bytes seen
	truncated bool
}

func (c *capture) headMax() int { return int(c.max / 2) }
func (c *capture) tailMax() int { return int(c.max) - c.headMax() }

// drain reads r until EOF or an error (such as a passed read deadline),
// keeping what fits. It never stops early on the cap: a writer blocked on a
// full pipe would otherwise never exit.
// observe, if not nil, sees each chunk as it is read.
func (c *capture) drain(r io.Reader, observe func([]byte)) {
	buf := chunks.Get().(*[readChunk]byte)
	defer chunks.Put(buf)
	chunk := buf[:]
	for {
		n, err := r.Read(chunk)
		if n > 0 && observe != nil {
			observe(chunk[:n])
		}
		c.add(chunk[:n])
		if err != nil {
			return
		}
	}
}

// add records p. Memory never exceeds max bytes plus a few, however large
// the stream.
func (c *capture) add(p []byte) {
	c.total += int64(len(p))
	c.truncated = c.total > c.max
	if room := c.headMax() - len(c.head); room > 0 {
		take := min(room, len(p))
		if need := len(c.head) + take; need > cap(c.head) {
			grown := make([]byte, len(c.head), min(max(2*cap(c.head), need, 512), c.headMax()))
			copy(grown, c.head)
			c.head = grown
		}
		c.head = append(c.head, p[:take]...)
		p = p[take:]
	}
	if len(p) == 0 {
		return
	}
	tmax := c.tailMax()
	if tmax == 0 {
		c.pushOut(p)
		return
	}
	if c.ring == nil {
		c.ring = make([]byte, 0, tmax)
	}
	// Fill the ring up to its size first.
	if room := tmax - len(c.ring); room > 0 {
		take := min(room, len(p))
		c.ring = append(c.ring, p[:take]...)
		p = p[take:]
	}
	if len(p) >= tmax {
		// p replaces the whole ring: everything in it, then p's own
		// beginning, is pushed out in that order.
		c.pushOut(c.linearRing())
		c.pushOut(p[:len(p)-tmax])
		copy(c.ring, p[len(p)-tmax:])
		c.start = 0
		return
	}
	for len(p) > 0 {
		n := min(tmax-c.start, len(p))
		c.pushOut(c.ring[c.start : c.start+n])
		copy(c.ring[c.start:], p[:n])
		c.start = (c.start + n) % tmax
		p = p[n:]
	}
}

// pushOut records that b leaves the capture, keeping its last bytes as
// lookbehind for the tail.
func (c *capture) pushOut(b []byte) {
	if len(b) == 0 {
		return
	}
	const keep = 3
	if len(b) >= keep {
		c.lookbehind = append(c.lookbehind[:0], b[len(b)-keep:]...)
		return
	}
	c.lookbehind = append(c.lookbehind, b...)
	if len(c.lookbehind) > keep {
		c.lookbehind = c.lookbehind[len(c.lookbehind)-keep:]
	}
}

// linearRing returns the tail bytes in stream order (a new slice when the
// ring has wrapped).
func (c *capture) linearRing() []byte {
	if c.start == 0 {
		return c.ring
	}
	out := make([]byte, 0, len(c.ring))
	out = append(out, c.ring[c.start:]...)
	return append(out, c.ring[:c.start]...)
}

// text returns the captured stream as valid UTF-8 (see [decodeReplace]).
// When bytes were dropped, it is the head, one marker line saying how many
// bytes are missing, and the tail; a character the cut split is counted as
// dropped rather than shown as U+FFFD.
func (c *capture) text() string {
	tail := c.linearRing()
	if !c.truncated {
		return decodeReplace(append(c.head[:len(c.head):len(c.head)], tail...))
	}
	head := trimCutSequence(c.head)
	lookbehind := c.lookbehind
	if short := 3 - len(lookbehind); short > 0 {
		// Fewer than 3 bytes were pushed out of the ring: the rest of the
		// context is the end of the head.
		from := max(0, len(c.head)-short)
		lookbehind = append(append([]byte(nil), c.head[from:]...), lookbehind...)
	}
	skip := alignedStart(lookbehind, tail)
	tail = tail[skip:]
	dropped := c.total - int64(len(head)) - int64(len(tail))
	out := decodeReplace(head)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out += "\n"
	}
	return out + fmt.Sprintf(droppedMarker, dropped) + decodeReplace(tail)
}

// droppedMarker is the line that stands for the bytes dropped between the
// head and the tail of a truncated stream.
const droppedMarker = "[... %d bytes of output dropped ...]\n"
