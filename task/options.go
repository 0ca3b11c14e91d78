package task

import (
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	// Zone data compiled in, so schedule_timezone works on machines
	// without a system zone database (minimal containers).
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Options are a task's schedule and retry fields. A nil field was not
// given and takes its default: no schedule, time zone UTC, overlap "skip",
// no catch-up, one attempt, a first retry delay of 1 s, at most 300 s
// between attempts, and shell tasks retried on no exit code.
type Options struct {
	// Schedule is a cron expression (5 fields, or 6 with seconds first),
	// a descriptor (@hourly, @daily, ...) or "@every <duration>".
	Schedule         *string `gorm:"type:text"`
	ScheduleTimezone *string `gorm:"type:text"`
	// ScheduleOverlap is OverlapSkip or OverlapAllow.
	ScheduleOverlap *string `gorm:"type:text"`
	ScheduleCatchUp *bool
	// MaxAttempts counts the first execution: 3 means up to two retries.
	MaxAttempts          *int
	RetryDelaySeconds    *float64
	RetryMaxDelaySeconds *float64
	// RetryOnExitCodes is stored as JSON: the string "any" or a list of
	// exit codes.
	RetryOnExitCodes *string `gorm:"type:text"`
}

// Schedule overlap policies.
const (
	OverlapSkip  = "skip"
	OverlapAllow = "allow"
)

// Defaults and bounds of the retry fields.
const (
	DefaultRetryDelay    = 1.0
	DefaultRetryMaxDelay = 300.0
	MaxAttemptsLimit     = 100
	// MaxRetryDelaySeconds bounds both delay fields: one day.
	MaxRetryDelaySeconds = 86400
)

// cronParser accepts 5 fields, 6 with seconds first, descriptors and
// @every.
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a schedule expression in the IANA time zone zone
// ("" means UTC). The returned schedule's Next gives the next tick
// strictly after a time, in UTC.
func ParseSchedule(expr, zone string) (*Schedule, error) {
	loc, err := loadZone(zone)
	if err != nil {
		return nil, err
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, fmt.Errorf("give the time zone in schedule_timezone, not in the expression")
	}
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, err
	}
	return &Schedule{s: s, loc: loc}, nil
}

func loadZone(zone string) (*time.Location, error) {
	if zone == "" || zone == "UTC" {
		return time.UTC, nil
	}
	if zone == "Local" {
		// time.LoadLocation accepts "Local", the machine's zone, which
		// would make the schedule depend on where a node runs.
		return nil, fmt.Errorf("unknown time zone Local")
	}
	return time.LoadLocation(zone)
}

// Schedule is a parsed schedule bound to its time zone.
type Schedule struct {
	s   cron.Schedule
	loc *time.Location
}

// Next returns the first tick strictly after t, in UTC; the zero time when
// the expression has none (such as 30 February).
func (s *Schedule) Next(t time.Time) time.Time {
	n := s.s.Next(t.In(s.loc))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

// schedule parses the task's schedule, nil when it has none or it does
// not parse (input validation refuses that, so only a row written by
// other means can hold one).
func (o *Options) schedule() *Schedule {
	if o.Schedule == nil {
		return nil
	}
	zone := ""
	if o.ScheduleTimezone != nil {
		zone = *o.ScheduleTimezone
	}
	s, err := ParseSchedule(*o.Schedule, zone)
	if err != nil {
		return nil
	}
	return s
}

func (o *Options) overlapAllowed() bool {
	return o.ScheduleOverlap != nil && *o.ScheduleOverlap == OverlapAllow
}

func (o *Options) catchUp() bool { return o.ScheduleCatchUp != nil && *o.ScheduleCatchUp }

func (o *Options) maxAttempts() int {
	if o.MaxAttempts == nil {
		return 1
	}
	return *o.MaxAttempts
}

// retryDelay is the wait before attempt+1, after attempt failed:
// min(retry_delay_seconds × 2^(attempt−1), retry_max_delay_seconds), less
// a random part of up to a fifth, so retries of many jobs that failed
// together spread out.
func (o *Options) retryDelay(attempt int) time.Duration {
	base, ceiling := DefaultRetryDelay, DefaultRetryMaxDelay
	if o.RetryDelaySeconds != nil {
		base = *o.RetryDelaySeconds
	}
	if o.RetryMaxDelaySeconds != nil {
		ceiling = *o.RetryMaxDelaySeconds
	}
	d := min(base*math.Pow(2, float64(max(attempt-1, 0))), ceiling)
	d -= d * 0.2 * rand.Float64()
	return time.Duration(d * float64(time.Second))
}

// retriesExitCode reports whether a shell execution that exited with code
// is retried.
func (o *Options) retriesExitCode(code int) bool {
	if o.RetryOnExitCodes == nil || code == 0 {
		return false
	}
	var v any
	if json.Unmarshal([]byte(*o.RetryOnExitCodes), &v) != nil {
		return false
	}
	switch x := v.(type) {
	case string:
		return x == "any"
	case []any:
		return slices.Contains(x, any(float64(code)))
	}
	return false
}

// equal reports whether a and b hold the same values.
func (o Options) equal(b Options) bool {
	return eqPtr(o.Schedule, b.Schedule) && eqPtr(o.ScheduleTimezone, b.ScheduleTimezone) &&
		eqPtr(o.ScheduleOverlap, b.ScheduleOverlap) && eqPtr(o.ScheduleCatchUp, b.ScheduleCatchUp) &&
		eqPtr(o.MaxAttempts, b.MaxAttempts) && eqPtr(o.RetryDelaySeconds, b.RetryDelaySeconds) &&
		eqPtr(o.RetryMaxDelaySeconds, b.RetryMaxDelaySeconds) && eqPtr(o.RetryOnExitCodes, b.RetryOnExitCodes)
}

func eqPtr[T comparable](a, b *T) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

// overlay returns o with every field that next sets replaced.
func (o Options) overlay(next Options) Options {
	set := func(dst **string, src *string) {
		if src != nil {
			*dst = src
		}
	}
	set(&o.Schedule, next.Schedule)
	set(&o.ScheduleTimezone, next.ScheduleTimezone)
	set(&o.ScheduleOverlap, next.ScheduleOverlap)
	set(&o.RetryOnExitCodes, next.RetryOnExitCodes)
	if next.ScheduleCatchUp != nil {
		o.ScheduleCatchUp = next.ScheduleCatchUp
	}
	if next.MaxAttempts != nil {
		o.MaxAttempts = next.MaxAttempts
	}
	if next.RetryDelaySeconds != nil {
		o.RetryDelaySeconds = next.RetryDelaySeconds
	}
	if next.RetryMaxDelaySeconds != nil {
		o.RetryMaxDelaySeconds = next.RetryMaxDelaySeconds
	}
	return o
}

// columns returns the options as column values for an update.
func (o Options) columns() map[string]any {
	return map[string]any{
		"schedule": o.Schedule, "schedule_timezone": o.ScheduleTimezone, "schedule_overlap": o.ScheduleOverlap,
		"schedule_catch_up": o.ScheduleCatchUp, "max_attempts": o.MaxAttempts, "retry_delay_seconds": o.RetryDelaySeconds,
		"retry_max_delay_seconds": o.RetryMaxDelaySeconds, "retry_on_exit_codes": o.RetryOnExitCodes,
	}
}

// members returns the options as the JSON members a client sends (for a
// merge patch); absent fields are left out.
func (o Options) members(m map[string]any) {
	put := func(name string, set bool, v any) {
		if set {
			m[name] = v
		}
	}
	put("schedule", o.Schedule != nil, derefAny(o.Schedule))
	put("schedule_timezone", o.ScheduleTimezone != nil, derefAny(o.ScheduleTimezone))
	put("schedule_overlap", o.ScheduleOverlap != nil, derefAny(o.ScheduleOverlap))
	put("schedule_catch_up", o.ScheduleCatchUp != nil, derefAny(o.ScheduleCatchUp))
	put("max_attempts", o.MaxAttempts != nil, derefAny(o.MaxAttempts))
	put("retry_delay_seconds", o.RetryDelaySeconds != nil, derefAny(o.RetryDelaySeconds))
	put("retry_max_delay_seconds", o.RetryMaxDelaySeconds != nil, derefAny(o.RetryMaxDelaySeconds))
	if o.RetryOnExitCodes != nil {
		m["retry_on_exit_codes"] = json.RawMessage(*o.RetryOnExitCodes)
	}
}

func derefAny[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// decodeOptions validates the schedule and retry members of a task body.
func decodeOptions(obj map[string]any, add func(field, typ, msg string, input any, ctx map[string]any)) Options {
	var o Options
	str := func(field string) (string, any, bool) {
		v, present := obj[field]
		if !present || v == nil {
			return "", nil, false
		}
		s, ok := v.(string)
		if !ok {
			add(field, "string_type", "Input should be a valid string", v, nil)
			return "", nil, false
		}
		return s, v, true
	}
	zone := ""
	if s, v, ok := str("schedule_timezone"); ok {
		if _, err := loadZone(s); err != nil {
			add("schedule_timezone", "value_error", "Value error, unknown time zone: "+s, v, map[string]any{"error": err.Error()})
		} else {
			o.ScheduleTimezone, zone = &s, s
		}
	}
	if s, v, ok := str("schedule"); ok {
		if _, err := ParseSchedule(s, zone); err != nil {
			add("schedule", "value_error", "Value error, invalid schedule: "+err.Error(), v, map[string]any{"error": err.Error()})
		} else {
			o.Schedule = &s
		}
	}
	if s, v, ok := str("schedule_overlap"); ok {
		if s == OverlapSkip || s == OverlapAllow {
			o.ScheduleOverlap = &s
		} else {
			expected := "'skip' or 'allow'"
			add("schedule_overlap", "literal_error", "Input should be "+expected, v, map[string]any{"expected": expected})
		}
	}
	if v, present := obj["schedule_catch_up"]; present && v != nil {
		if b, ok := LaxBool(v); ok {
			o.ScheduleCatchUp = &b
		} else {
			add("schedule_catch_up", "bool_type", "Input should be a valid boolean", v, nil)
		}
	}
	if v, present := obj["max_attempts"]; present && v != nil {
		n, _ := v.(json.Number)
		i, isInt := new(big.Int).SetString(n.String(), 10)
		switch {
		case !isInt:
			add("max_attempts", "int_type", "Input should be a valid integer", v, nil)
		case i.Sign() <= 0:
			add("max_attempts", "greater_than_equal", "Input should be greater than or equal to 1", v, map[string]any{"ge": 1})
		case i.Cmp(big.NewInt(MaxAttemptsLimit)) > 0:
			add("max_attempts", "less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", MaxAttemptsLimit), v, map[string]any{"le": MaxAttemptsLimit})
		default:
			k := int(i.Int64())
			o.MaxAttempts = &k
		}
	}
	seconds := func(field string, dst **float64) {
		v, present := obj[field]
		if !present || v == nil {
			return
		}
		n, isNum := v.(json.Number)
		f, err := n.Float64()
		switch {
		case !isNum || err != nil || math.IsNaN(f) || math.IsInf(f, 0):
			add(field, "float_type", "Input should be a valid number", v, nil)
		case f < 0:
			add(field, "greater_than_equal", "Input should be greater than or equal to 0", v, map[string]any{"ge": 0})
		case f > MaxRetryDelaySeconds:
			add(field, "less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", MaxRetryDelaySeconds), v, map[string]any{"le": MaxRetryDelaySeconds})
		default:
			*dst = &f
		}
	}
	seconds("retry_delay_seconds", &o.RetryDelaySeconds)
	seconds("retry_max_delay_seconds", &o.RetryMaxDelaySeconds)
	if v, present := obj["retry_on_exit_codes"]; present && v != nil {
		if raw, ok := exitCodes(v); ok {
			o.RetryOnExitCodes = &raw
		} else {
			add("retry_on_exit_codes", "value_error", "Value error, expected \"any\" or a list of exit codes from 1 to 255", v, nil)
		}
	}
	return o
}

// exitCodes checks retry_on_exit_codes and returns its stored form.
func exitCodes(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		if x == "any" {
			return `"any"`, true
		}
	case []any:
		codes := make([]int, 0, len(x))
		for _, e := range x {
			n, ok := e.(json.Number)
			if !ok {
				return "", false
			}
			i, err := n.Int64()
			if err != nil || i < 1 || i > 255 {
				return "", false
			}
			codes = append(codes, int(i))
		}
		raw, _ := json.Marshal(codes)
		return string(raw), true
	}
	return "", false
}
