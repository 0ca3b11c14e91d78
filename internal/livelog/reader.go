package livelog

import (
	"context"
	"encoding/json"
	"io"
	"strings"

	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/job"
)

// Jobs is what a [Reader] needs of the job scheduler.
type Jobs interface {
	Get(ctx context.Context, id string) (*job.Job, error)
	Subscribe(id string) (<-chan job.Event, func())
}

// ArtifactData returns the stored data of artifact id.
type ArtifactData func(ctx context.Context, id string) (json.RawMessage, error)

// replayChunk is the largest Output event a replay sends.
const replayChunk = 16 << 10

// Reader is the output of one job, wherever and whenever it runs: the live
// feed when the job runs in this process, otherwise, once the job has
// finished, the output its artifact stored (all of stdout, then all of
// stderr), and in both cases one End event last. A job that runs in
// another process is followed live when the hub has a [Remote] (nodes
// sharing PostgreSQL, see [Relay]); otherwise it is replayed when it
// finishes. A Reader is used by one goroutine at a time; call Close when
// done.
type Reader struct {
	fl          *Follower
	events      <-chan job.Event
	unsubscribe func()
	artifact    ArtifactData

	hub       *Hub
	id        string
	stopWatch func() // ends the watch of a job running on another node

	terminal *job.Job // set once the job is known to be finished
	gone     bool     // the job was deleted
	queue    []Event
	done     bool
}

// NewReader opens the output of job id. It subscribes before it looks, so
// no transition between the two is missed. The error is the scheduler's
// (a not-found problem for an unknown job).
func NewReader(ctx context.Context, h *Hub, jobs Jobs, artifact ArtifactData, id string) (*Reader, error) {
	events, unsubscribe := jobs.Subscribe(id)
	fl := h.Follow(id)
	j, err := jobs.Get(ctx, id)
	if err != nil {
		fl.Close()
		unsubscribe()
		return nil, err
	}
	r := &Reader{fl: fl, events: events, unsubscribe: unsubscribe, artifact: artifact, hub: h, id: id}
	if j.Status.Terminal() {
		r.terminal = j
	}
	r.watchRemote(j)
	return r, nil
}

// Next returns the next event, waiting for it if need be. After the End
// event it returns io.EOF. If ctx ends first, it returns ctx's error and
// the Reader stays usable: no event is lost.
func (r *Reader) Next(ctx context.Context) (Event, error) {
	for {
		if len(r.queue) > 0 {
			ev := r.queue[0]
			r.queue = r.queue[1:]
			return ev, nil
		}
		if r.done {
			return Event{}, io.EOF
		}
		if ev, ok := r.fl.TryNext(); ok {
			if ev.Kind == End {
				r.done = true
			}
			return ev, nil
		}
		if !r.fl.Attached() {
			switch {
			case r.gone:
				r.queue, r.done = []Event{{Kind: End}}, true
				continue
			case r.terminal != nil:
				r.queue, r.done = r.replay(ctx, r.terminal), true
				continue
			}
		}
		select {
		case <-r.fl.Ready():
		case ev := <-r.events:
			switch {
			case ev.Deleted:
				r.gone = true
			case ev.Job != nil && ev.Job.Status.Terminal():
				r.terminal = ev.Job
			case ev.Job != nil:
				r.watchRemote(ev.Job)
			}
		case <-ctx.Done():
			return Event{}, ctx.Err()
		}
	}
}

// watchRemote asks for the live output of j when it runs on another node
// (and the hub has a [Remote]), once.
func (r *Reader) watchRemote(j *job.Job) {
	if r.stopWatch != nil || j.Status != job.StatusRunning || r.fl.Attached() {
		return
	}
	if rm := r.hub.remoteOf(); rm != nil {
		r.stopWatch = rm.Watch(r.id)
	}
}

// Close releases the reader. It is idempotent.
func (r *Reader) Close() {
	r.fl.Close()
	r.unsubscribe()
	if r.stopWatch != nil {
		r.stopWatch()
		r.stopWatch = nil
	}
}

// replay returns the events of a finished job's stored output.
func (r *Reader) replay(ctx context.Context, j *job.Job) []Event {
	end := Event{Kind: End}
	if j.ArtifactID == nil || r.artifact == nil {
		return []Event{end}
	}
	data, err := r.artifact(ctx, *j.ArtifactID)
	if err != nil {
		return []Event{end}
	}
	var stored struct {
		Stdout   *string `json:"stdout"`
		Stderr   *string `json:"stderr"`
		ExitCode *int    `json:"exit_code"`
	}
	if json.Unmarshal(data, &stored) != nil || stored.Stdout == nil {
		return []Event{end} // not a shell job's artifact
	}
	var out []Event
	out = appendChunks(out, shell.Stdout, *stored.Stdout)
	if stored.Stderr != nil {
		out = appendChunks(out, shell.Stderr, *stored.Stderr)
	}
	end.ExitCode = stored.ExitCode
	return append(out, end)
}

// appendChunks splits text into Output events of at most replayChunk
// bytes, cut after a newline where there is one.
func appendChunks(out []Event, s shell.Stream, text string) []Event {
	for len(text) > 0 {
		n := len(text)
		if n > replayChunk {
			n = replayChunk
			if i := strings.LastIndexByte(text[:n], '\n'); i >= 0 {
				n = i + 1
			} else {
				n = runeCut([]byte(text[:n]))
			}
		}
		out = append(out, Event{Kind: Output, Stream: s, Text: text[:n]})
		text = text[n:]
	}
	return out
}
