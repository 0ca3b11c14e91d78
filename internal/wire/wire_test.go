package wire

import (
	"math"
	"testing"
	"time"
)

func TestValidID(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"generated", NewID(), true},
		{"seed id", "01JCSEED0000000000000TASK1", true},
		{"known valid", "01K72P5N5KCRM6MD3BRE4P0999", true},
		{"lower case", "01k72p5n5kcrm6md3bre4p0999", false},
		{"letter I", "01K72P5N5KCRM6MD3BRE4P0I99", false},
		{"letter L", "01K72P5N5KCRM6MD3BRE4P0L99", false},
		{"letter O", "01K72P5N5KCRM6MD3BRE4P0O99", false},
		{"letter U", "01K72P5N5KCRM6MD3BRE4P0U99", false},
		{"overflow", "81K72P5N5KCRM6MD3BRE4P0999", false},
		{"short", "01K72P5N5KCRM6MD3BRE4P099", false},
		{"long", "01K72P5N5KCRM6MD3BRE4P09999", false},
		{"empty", "", false},
		{"words", "not-a-ulid", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ValidID(tc.in); got != tc.want {
				t.Errorf("ValidID(%q) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestFormatTime(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2025, 10, 14, 10, 30, 0, 0, time.UTC), "2025-10-14T10:30:00Z"},
		{time.Date(2025, 10, 14, 10, 30, 0, 123000000, time.UTC), "2025-10-14T10:30:00.123Z"},
		{time.Date(2025, 10, 14, 10, 30, 0, 123456789, time.UTC), "2025-10-14T10:30:00.123456Z"},
		{time.Date(2025, 10, 14, 12, 30, 0, 0, time.FixedZone("CEST", 7200)), "2025-10-14T10:30:00Z"},
	}
	for _, tc := range tests {
		if got := FormatTime(tc.in); got != tc.want {
			t.Errorf("FormatTime(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	f.Add("01K72P5N5KCRM6MD3BRE4P0999")
	f.Add("01k72p5n5kcrm6md3bre4p0999")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		if !ValidID(s) {
			return
		}
		for i := 0; i < len(s); i++ {
			if !isCrockford(s[i]) {
				t.Fatalf("accepted %q with byte %q outside the alphabet", s, s[i])
			}
		}
		if len(s) != 26 {
			t.Fatalf("accepted %q of length %d", s, len(s))
		}
	})
}

func TestPageOffset(t *testing.T) {
	tests := []struct {
		name       string
		page, size int
		want       int
		wantOK     bool
	}{
		{"first page", 1, 10, 0, true},
		{"third page", 3, 10, 20, true},
		{"page zero", 0, 10, 0, false},
		{"negative size", 1, -1, 0, false},
		{"largest offset that fits", math.MaxInt/10 + 1, 10, math.MaxInt / 10 * 10, true},
		{"one page further", math.MaxInt/10 + 2, 10, 0, false},
		{"largest page", math.MaxInt, 2, 0, false},
		{"largest page of size one", math.MaxInt, 1, math.MaxInt - 1, true},
		{"largest size, first page", 1, math.MaxInt, 0, true},
		{"largest size, second page", 2, math.MaxInt, math.MaxInt, true},
		{"largest size, third page", 3, math.MaxInt, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := PageOffset(tc.page, tc.size)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("PageOffset(%d, %d) = %d, %v; want %d, %v", tc.page, tc.size, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}
