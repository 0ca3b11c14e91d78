// Package wire holds the small conventions every layer shares on the wire:
// ULID identifiers parsed strictly and timestamps rendered as RFC 3339 UTC.
package wire

import (
	"math"
	"time"

	"github.com/oklog/ulid/v2"
)

// NewID returns a fresh ULID string. It is safe for concurrent use: ulid.Make
// draws from a process-wide monotonic source guarded by a mutex, so ids made
// in the same millisecond still sort in creation order.
func NewID() string { return ulid.Make().String() }

// ValidID reports whether s is a ULID in the strict form chapkit clients
// expect: 26 characters of the upper-case Crockford alphabet, the first one
// 0-7 so the value fits in 128 bits. oklog/ulid alone would also accept
// lower case, which must give the same 400 as any other malformed id.
func ValidID(s string) bool {
	if len(s) != ulid.EncodedSize || s[0] < '0' || s[0] > '7' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isCrockford(s[i]) {
			return false
		}
	}
	return true
}

func isCrockford(c byte) bool {
	switch {
	case c >= '0' && c <= '9':
		return true
	case c >= 'A' && c <= 'Z':
		return c != 'I' && c != 'L' && c != 'O' && c != 'U'
	}
	return false
}

// Precision is the resolution timestamps are stored and shown with.
const Precision = time.Microsecond

// Now returns the current time in UTC, truncated to [Precision], so a value
// read back from the database equals the value that was written.
func Now() time.Time { return time.Now().UTC().Truncate(Precision) }

// FormatTime renders t as RFC 3339 in UTC with a Z and the fraction's
// trailing zeros trimmed (2025-10-14T10:30:00.123Z, 2025-10-14T10:30:00Z).
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(Precision).Format(time.RFC3339Nano)
}

// FormatTimePtr is [FormatTime] for optional timestamps: nil stays nil.
func FormatTimePtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := FormatTime(*t)
	return &s
}

// PageOffset is the number of rows before page page (from 1) of size size:
// (page-1)*size. ok is false when either is below 1, or when the offset
// does not fit in an int: such a page lies past the end of any table, so
// the caller answers it with no items rather than letting the product wrap
// around to a negative offset, which would serve the first page again.
func PageOffset(page, size int) (offset int, ok bool) {
	if page < 1 || size < 1 {
		return 0, false
	}
	if page-1 > math.MaxInt/size {
		return 0, false
	}
	return (page - 1) * size, true
}
