package chapkit

import (
	"fmt"
	"time"

	"github.com/chapkit-go/chapkit/task"
)

// Upper bounds of the builder's numeric options that have one. Each is
// far above any sensible setting; they exist so that a value near the top
// of its type cannot overflow where it is used (a body cap plus one byte,
// a per-stream buffer) and so the error names the range.
const (
	maxBodyBytesLimit = 1 << 30 // 1 GiB
	maxOutputLimit    = 1 << 30 // 1 GiB per stream
	maxDefaultTimeout = task.MaxTimeoutSeconds * time.Second
)

// checkRanges reports every numeric option outside its allowed range,
// naming the field and the range. Zero keeps meaning "the default" where
// it does; a negative count or duration is always a mistake rather than
// a quiet "unlimited" or "default".
func (b *ServiceBuilder) checkRanges() []error {
	var errs []error
	atLeastZero := func(field string, v int64, zero string) {
		if v < 0 {
			errs = append(errs, fmt.Errorf("%s is %d; allowed: 0 (%s) or more", field, v, zero))
		}
	}
	duration := func(field string, v time.Duration, zero string, most time.Duration) {
		switch {
		case v < 0:
			errs = append(errs, fmt.Errorf("%s is %s; allowed: 0 (%s) or a positive duration", field, v, zero))
		case most > 0 && v > most:
			errs = append(errs, fmt.Errorf("%s is %s; allowed: 0 (%s) up to %s", field, v, zero, most))
		}
	}
	bytes := func(field string, v int64, zero string, most int64) {
		switch {
		case v < 0:
			errs = append(errs, fmt.Errorf("%s is %d; allowed: 0 (%s) up to %d bytes", field, v, zero, most))
		case v > most:
			errs = append(errs, fmt.Errorf("%s is %d bytes; allowed: 0 (%s) up to %d bytes", field, v, zero, most))
		}
	}

	bytes("Limits.MaxBodyBytes", b.limits.MaxBodyBytes, "1 MiB", maxBodyBytesLimit)
	atLeastZero("Limits.MaxStreams", int64(b.limits.MaxStreams), "1,000")
	duration("DatabaseOptions.BusyTimeout", b.dbOpts.BusyTimeout, "the default", 0)

	if j := b.jobs; j != nil {
		for _, c := range []struct {
			prefix                                       string
			maxConcurrency, maxPending, retryInterrupted int
			drain, abandon                               time.Duration
		}{
			{"JobsConfig.", j.MaxConcurrency, j.MaxPending, j.RetryInterrupted, j.DrainTimeout, j.AbandonAfter},
			{"JobsConfig.Scheduler.", j.Scheduler.MaxConcurrency, j.Scheduler.MaxPending, j.Scheduler.RetryInterrupted,
				j.Scheduler.DrainTimeout, j.Scheduler.AbandonAfter},
		} {
			atLeastZero(c.prefix+"MaxConcurrency", int64(c.maxConcurrency), "unlimited")
			atLeastZero(c.prefix+"MaxPending", int64(c.maxPending), "10,000")
			atLeastZero(c.prefix+"RetryInterrupted", int64(c.retryInterrupted), "no retry")
			duration(c.prefix+"DrainTimeout", c.drain, "30s", 0)
			duration(c.prefix+"AbandonAfter", c.abandon, "10s", 0)
		}
		duration("JobsConfig.Scheduler.RescueAfter", j.Scheduler.RescueAfter, "15s", 0)
		duration("JobsConfig.Scheduler.PollInterval", j.Scheduler.PollInterval, "1s", 0)
		if r := j.Retention; r != nil {
			duration("RetentionConfig.MaxAge", r.MaxAge, "no limit", 0)
			atLeastZero("RetentionConfig.MaxCount", int64(r.MaxCount), "no limit")
			duration("RetentionConfig.Interval", r.Interval, "1m0s", 0)
			atLeastZero("RetentionConfig.BatchSize", int64(r.BatchSize), "500")
		}
	}
	if t := b.tasks; t != nil {
		bytes("TasksConfig.MaxOutput", t.MaxOutput, "1 MiB", maxOutputLimit)
		bytes("TasksConfig.Manager.MaxOutput", t.Manager.MaxOutput, "1 MiB", maxOutputLimit)
		duration("TasksConfig.DefaultTimeout", t.DefaultTimeout, "no timeout", maxDefaultTimeout)
		duration("TasksConfig.Manager.DefaultTimeout", t.Manager.DefaultTimeout, "no timeout", maxDefaultTimeout)
	}
	return errs
}
