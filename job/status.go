package job

// Status is the state of a job, spelled as on the wire.
type Status string

// The job states (docs/jobs.md). Completed, failed and canceled are terminal.
const (
	StatusPending   Status = "pending"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCanceled  Status = "canceled"
	// StatusScheduled: waiting for its run_at (a planned tick of a
	// schedule, or a retry waiting for its delay). Lists show it only when
	// asked for by status.
	StatusScheduled Status = "scheduled"
)

// Statuses lists every status in the order chapkit clients list them.
var Statuses = []Status{StatusPending, StatusRunning, StatusCompleted, StatusFailed, StatusCanceled, StatusScheduled}

// Terminal reports whether no further transition can follow s.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCanceled
}

// ParseStatus returns the status spelled s, and false when s is none.
func ParseStatus(s string) (Status, bool) {
	for _, st := range Statuses {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}
