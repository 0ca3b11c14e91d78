package shell

import (
	"strings"
	"unicode/utf8"
)

// decodeReplace returns b as valid UTF-8, with one U+FFFD for each invalid
// sequence, where a sequence is the longest prefix of a well-formed
// character (the Unicode "maximal subpart" practice). This is what Python's
// bytes.decode("utf-8", errors="replace") produces, so outputs match those
// of chapkit for Python byte for byte: "\xc0\xff" gives two U+FFFD, the cut
// "\xe2\x82" before ASCII gives one, and the surrogate "\xed\xa0\x80" gives
// three. strings.ToValidUTF8 would instead collapse every run of bad bytes
// into a single U+FFFD.
func decodeReplace(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 16)
	for len(b) > 0 {
		n, ok := nextSequence(b)
		if ok {
			sb.Write(b[:n])
		} else {
			sb.WriteRune(utf8.RuneError)
		}
		b = b[n:]
	}
	return sb.String()
}

// nextSequence returns the length of the sequence at the start of b (which
// must not be empty) and whether it is a well-formed character. An invalid
// sequence is the maximal subpart: a lead byte followed by as many bytes as
// could still continue a well-formed character, or else one byte.
func nextSequence(b []byte) (n int, ok bool) {
	need, lo, hi := sequenceShape(b[0])
	if need <= 1 {
		return 1, need == 1
	}
	n = 1
	for n < need && n < len(b) {
		c := b[n]
		if n == 1 && (c < lo || c > hi) || n > 1 && (c < 0x80 || c > 0xBF) {
			break
		}
		n++
	}
	return n, n == need
}

// sequenceShape returns the length of the character that lead byte c
// starts (1 for ASCII, 0 for a byte that never starts one) and the range
// its second byte must fall in (Unicode Table 3-7, which excludes overlong
// forms, surrogates and code points above U+10FFFF).
func sequenceShape(c byte) (need int, lo, hi byte) {
	lo, hi = 0x80, 0xBF
	switch {
	case c < 0x80:
		return 1, lo, hi
	case c >= 0xC2 && c <= 0xDF:
		return 2, lo, hi
	case c == 0xE0:
		return 3, 0xA0, hi
	case c == 0xED:
		return 3, lo, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		return 3, lo, hi
	case c == 0xF0:
		return 4, 0x90, hi
	case c >= 0xF1 && c <= 0xF3:
		return 4, lo, hi
	case c == 0xF4:
		return 4, lo, 0x8F
	}
	return 0, lo, hi
}

// trimCutSequence drops from the end of b a well-formed character's
// beginning that the output cap cut off, so the cut does not invent a
// U+FFFD the command never wrote. Bytes that could never become a
// character are kept (they are replaced like any other invalid byte).
func trimCutSequence(b []byte) []byte {
	for i := len(b) - 1; i >= 0 && i >= len(b)-(utf8.UTFMax-1); i-- {
		need, _, _ := sequenceShape(b[i])
		if need == 0 {
			continue // a continuation byte: look further back for its lead
		}
		if n, ok := nextSequence(b[i:]); !ok && i+n == len(b) && n < need {
			return b[:i]
		}
		return b
	}
	return b
}

// alignedStart returns how many leading bytes of tail to skip because they
// continue a sequence that began in the bytes before it (lookbehind, at most
// the 3 bytes directly before tail). Decoding lookbehind+tail from the
// start, sequence by sequence, reaches the same boundaries as decoding the
// whole stream would, because any sequence that covers tail's first byte
// starts at most 3 bytes earlier and continuation bytes never start one.
func alignedStart(lookbehind, tail []byte) int {
	joined := make([]byte, 0, len(lookbehind)+min(len(tail), utf8.UTFMax))
	joined = append(joined, lookbehind...)
	joined = append(joined, tail[:min(len(tail), utf8.UTFMax)]...)
	i := 0
	for i < len(lookbehind) {
		n, _ := nextSequence(joined[i:])
		i += n
	}
	return min(i-len(lookbehind), len(tail))
}
