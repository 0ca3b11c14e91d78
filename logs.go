package chapkit

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/chapkit-go/chapkit/internal/livelog"
)

// LogReader reads the output of one job; see [App.Logs].
type LogReader = livelog.Reader

// LogEvent is one item a [LogReader] returns: text written on stdout or
// stderr, a count of skipped bytes, or the end with the exit code.
type LogEvent = livelog.Event

// The kinds of [LogEvent].
const (
	LogOutput  = livelog.Output
	LogSkipped = livelog.Skipped
	LogEnd     = livelog.End
)

// Logs opens the output of job jobID, as GET /api/v1/jobs/{id}/$logs
// streams it: live while the job runs, in this process or (on PostgreSQL)
// relayed from the node that runs it, replayed from its artifact once it
// finished, and an End event last; Next returns io.EOF after it. A reader that falls
// behind loses text and gets a Skipped event saying how many bytes; the
// job is never slowed down. Memory per reader is bounded (see
// docs/live-output.md). The error is a not-found problem for an unknown
// job. Close the reader when done. Call Start first; without WithJobs,
// Logs returns an error.
func (a *App) Logs(ctx context.Context, jobID string) (*LogReader, error) {
	if a.sched == nil {
		return nil, errNoJobs
	}
	return livelog.NewReader(ctx, a.live, a.sched, a.artifactData(), jobID)
}

// artifactData returns how a log reader reads a stored artifact, or nil
// without artifacts.
func (a *App) artifactData() livelog.ArtifactData {
	if a.artifacts == nil {
		return nil
	}
	return func(ctx context.Context, id string) (json.RawMessage, error) {
		art, err := a.artifacts.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		return art.Data, nil
	}
}

var errNoJobs = errors.New("chapkit: Logs needs a started app with WithJobs")
