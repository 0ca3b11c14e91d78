// Package livelog carries the output of running shell jobs to whoever
// watches them, in this process: a [Hub] holds one [Feed] per running job,
// the task runner writes the chunks its command prints into the feed, and
// each [Follower] receives them in order.
//
// Memory is bounded everywhere and no writer ever waits for a reader:
//   - a feed keeps the most recent [BacklogBytes] of output, both streams
//     together, so a follower that joins late first gets that backlog;
//   - each follower queues at most [FollowerBytes] of text it has not read
//     yet; what does not fit is dropped and counted, and the follower
//     receives one Skipped event with the counts before the next text;
//   - a partial line is held back for at most [FlushAfter] or until it is
//     [LineHold] bytes long, so text is delivered at line boundaries where
//     the command writes whole lines.
//
// Only the process that runs a job has its feed; [Reader] hides that: it
// follows the live feed when there is one and otherwise waits for the job
// to finish and replays the output its artifact stored (docs/live-output.md).
package livelog

import (
	"bytes"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/chapkit-go/chapkit/internal/shell"
)

// The bounds of a feed and its followers, in bytes of output text.
const (
	// BacklogBytes is how much recent output a feed keeps for followers
	// that join while the job runs.
	BacklogBytes = 64 << 10
	// FollowerBytes is how much unread text one follower may queue.
	FollowerBytes = 256 << 10
	// LineHold is the longest partial line held back waiting for its end.
	LineHold = 4 << 10
)

// FlushAfter is how long a partial line is held back before it is sent
// without its end (a progress indicator that never prints a newline).
const FlushAfter = 200 * time.Millisecond

// Kind says what an [Event] carries.
type Kind uint8

const (
	// Output is text the command wrote on Stream.
	Output Kind = iota + 1
	// Skipped counts bytes that were dropped before the next event,
	// because the follower read too slowly or joined after they left the
	// backlog.
	Skipped
	// End is the last event of a feed.
	End
)

// Event is one item of a job's output.
type Event struct {
	Kind Kind
	// Stream and Text are set for Output. Text is valid UTF-8 (invalid
	// bytes become U+FFFD) and, where the command wrote whole lines, ends
	// with a newline.
	Stream shell.Stream
	Text   string
	// SkippedStdout and SkippedStderr are set for Skipped: the number of
	// bytes of each stream that were dropped.
	SkippedStdout, SkippedStderr int64
	// ExitCode is set for End when the command's exit status is known:
	// its status, or -N when signal N ended it. Nil when the command did
	// not start, the job ran no shell command, or its artifact is gone.
	ExitCode *int
}

// Hub is the set of live feeds of one process, keyed by job ID. It is safe
// for concurrent use. The zero value is not usable; call [NewHub].
type Hub struct {
	mu      sync.Mutex
	feeds   map[string]*Feed
	waiting map[string]map[*Follower]struct{} // followers of jobs not (yet) running here
	remote  Remote                            // set once, before use; nil on a single node
}

// Remote brings the output of jobs running on other nodes into a hub:
// see [Relay].
type Remote interface {
	// Watch asks for the output of job id until stop is called.
	Watch(id string) (stop func())
}

// SetRemote makes followers of jobs that run on other nodes receive their
// output through rm. Call it before the hub is used.
func (h *Hub) SetRemote(rm Remote) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remote = rm
}

func (h *Hub) remoteOf() Remote {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.remote
}

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{feeds: map[string]*Feed{}, waiting: map[string]map[*Follower]struct{}{}}
}

// Open starts the feed of a run of job id: followers waiting for it are
// attached. A feed still open for the same id is closed first, without an
// exit code. The caller must [Feed.Close] the feed when the run ends.
func (h *Hub) Open(id string) *Feed {
	f := &Feed{hub: h, id: id, followers: map[*Follower]struct{}{}}
	h.mu.Lock()
	old := h.feeds[id]
	h.mu.Unlock()
	if old != nil {
		old.Close(nil)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.feeds[id] = f
	for fl := range h.waiting[id] {
		f.attach(fl)
	}
	delete(h.waiting, id)
	return f
}

// Follow returns a follower of job id. If the job's feed is open, the
// follower is attached to it and first receives its backlog; otherwise it
// waits, and is attached if the job starts running in this process later.
// A follower that is never attached receives nothing: see [Follower.Attached].
// Close it when done.
func (h *Hub) Follow(id string) *Follower {
	fl := &Follower{hub: h, id: id, ready: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if f := h.feeds[id]; f != nil {
		f.attach(fl)
		return fl
	}
	if h.waiting[id] == nil {
		h.waiting[id] = map[*Follower]struct{}{}
	}
	h.waiting[id][fl] = struct{}{}
	return fl
}

// Running reports whether job id has an open feed in this process.
func (h *Hub) Running(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.feeds[id] != nil
}

// Feed is the output of one run of a job. Write and Close are safe for
// concurrent use and never block on followers.
type Feed struct {
	hub *Hub
	id  string

	mu      sync.Mutex
	partial [2][]byte      // held-back partial line per stream
	timer   [2]*time.Timer // flushes the partial line after FlushAfter
	backlog []Event        // recent Output events, oldest first
	size    int            // bytes of text in backlog
	evicted [2]int64       // bytes per stream that left the backlog
	closed  bool

	// followers is guarded by both hub.mu and mu: attach holds both.
	followers map[*Follower]struct{}
}

// attach adds fl and queues the backlog for it. The caller holds h.mu.
func (f *Feed) attach(fl *Follower) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fl.feed = f
	fl.mu.Lock()
	fl.attached = true
	fl.mu.Unlock()
	if f.evicted != [2]int64{} {
		fl.push(Event{Kind: Skipped, SkippedStdout: f.evicted[shell.Stdout], SkippedStderr: f.evicted[shell.Stderr]})
	}
	for _, ev := range f.backlog {
		fl.push(ev)
	}
	if f.closed {
		fl.push(Event{Kind: End})
		return
	}
	f.followers[fl] = struct{}{}
}

// Write adds a chunk the command wrote on stream s. It copies p.
func (f *Feed) Write(s shell.Stream, p []byte) {
	if s > shell.Stderr || len(p) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	buf := append(f.partial[s], p...)
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		f.emit(s, buf[:i+1])
		buf = buf[i+1:]
	}
	for len(buf) >= LineHold {
		cut := runeCut(buf[:LineHold])
		f.emit(s, buf[:cut])
		buf = buf[cut:]
	}
	f.partial[s] = append([]byte(nil), buf...)
	switch {
	case len(buf) == 0 && f.timer[s] != nil:
		f.timer[s].Stop()
		f.timer[s] = nil
	case len(buf) > 0 && f.timer[s] == nil:
		f.timer[s] = time.AfterFunc(FlushAfter, func() { f.flush(s) })
	}
}

// flush sends the held-back partial line of s.
func (f *Feed) flush(s shell.Stream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.timer[s] = nil
	if len(f.partial[s]) > 0 && !f.closed {
		f.emit(s, f.partial[s])
		f.partial[s] = nil
	}
}

// runeCut returns the length of the longest prefix of b that does not end
// inside a UTF-8 sequence, so a forced cut never splits a character.
func runeCut(b []byte) int {
	for back := 1; back < utf8.UTFMax && back <= len(b); back++ {
		if utf8.RuneStart(b[len(b)-back]) {
			if !utf8.FullRune(b[len(b)-back:]) && back < len(b) {
				return len(b) - back
			}
			return len(b)
		}
	}
	return len(b)
}

// emit sends text to the backlog and every follower. The caller holds f.mu.
func (f *Feed) emit(s shell.Stream, text []byte) {
	if !utf8.Valid(text) { // checked first: Valid is much faster on the usual, valid text
		text = bytes.ToValidUTF8(text, []byte("\uFFFD"))
	}
	ev := Event{Kind: Output, Stream: s, Text: string(text)}
	f.backlog = append(f.backlog, ev)
	f.size += len(ev.Text)
	for f.size > BacklogBytes && len(f.backlog) > 0 {
		old := f.backlog[0]
		f.backlog[0] = Event{}
		f.backlog = f.backlog[1:]
		f.size -= len(old.Text)
		f.evicted[old.Stream] += int64(len(old.Text))
	}
	for fl := range f.followers {
		fl.push(ev)
	}
}

// Skip tells the followers that n bytes of stdout and e bytes of stderr
// were lost before the text that follows (a relayed feed whose source
// skipped them).
func (f *Feed) Skip(n, e int64) {
	if n <= 0 && e <= 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	for s := range f.partial { // the lost bytes came after the held-back text
		if len(f.partial[s]) > 0 {
			f.emit(shell.Stream(s), f.partial[s])
			f.partial[s] = nil
		}
	}
	f.evicted[shell.Stdout] += n
	f.evicted[shell.Stderr] += e
	for fl := range f.followers {
		fl.push(Event{Kind: Skipped, SkippedStdout: n, SkippedStderr: e})
	}
}

// Close ends the feed: held-back text is sent, then an End event with
// exitCode (nil when unknown), and the feed leaves the hub. Further writes
// are ignored. Close is idempotent.
func (f *Feed) Close(exitCode *int) {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	for s := range f.partial {
		if f.timer[s] != nil {
			f.timer[s].Stop()
			f.timer[s] = nil
		}
		if len(f.partial[s]) > 0 {
			f.emit(shell.Stream(s), f.partial[s])
			f.partial[s] = nil
		}
	}
	f.closed = true
	for fl := range f.followers {
		fl.push(Event{Kind: End, ExitCode: exitCode})
	}
	f.mu.Unlock()

	f.hub.mu.Lock()
	defer f.hub.mu.Unlock()
	if f.hub.feeds[f.id] == f {
		delete(f.hub.feeds, f.id)
	}
}

// Follower receives the events of one job's feed. Its methods are safe for
// concurrent use.
type Follower struct {
	hub  *Hub
	id   string
	feed *Feed // guarded by hub.mu; nil while waiting

	ready chan struct{} // signalled (capacity 1) when an event is queued

	mu       sync.Mutex
	attached bool
	queue    []Event
	size     int // bytes of text in queue
}

// push queues ev, dropping Output that does not fit and counting it in a
// Skipped event. It never blocks.
func (fl *Follower) push(ev Event) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if ev.Kind == Output && fl.size+len(ev.Text) > FollowerBytes {
		n := len(fl.queue)
		if n == 0 || fl.queue[n-1].Kind != Skipped {
			fl.queue = append(fl.queue, Event{Kind: Skipped})
			n++
		}
		if ev.Stream == shell.Stderr {
			fl.queue[n-1].SkippedStderr += int64(len(ev.Text))
		} else {
			fl.queue[n-1].SkippedStdout += int64(len(ev.Text))
		}
	} else {
		if ev.Kind == Skipped {
			if n := len(fl.queue); n > 0 && fl.queue[n-1].Kind == Skipped {
				fl.queue[n-1].SkippedStdout += ev.SkippedStdout
				fl.queue[n-1].SkippedStderr += ev.SkippedStderr
				ev = Event{}
			}
		}
		if ev.Kind != 0 {
			fl.queue = append(fl.queue, ev)
			fl.size += len(ev.Text)
		}
	}
	select {
	case fl.ready <- struct{}{}:
	default:
	}
}

// TryNext returns the oldest queued event, if any.
func (fl *Follower) TryNext() (Event, bool) {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if len(fl.queue) == 0 {
		return Event{}, false
	}
	ev := fl.queue[0]
	fl.queue[0] = Event{}
	fl.queue = fl.queue[1:]
	fl.size -= len(ev.Text)
	return ev, true
}

// Ready is signalled when an event may have been queued.
func (fl *Follower) Ready() <-chan struct{} { return fl.ready }

// Attached reports whether the follower has been attached to a feed: the
// job ran, or runs, in this process.
func (fl *Follower) Attached() bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	return fl.attached
}

// Close detaches the follower. It is idempotent.
func (fl *Follower) Close() {
	fl.hub.mu.Lock()
	defer fl.hub.mu.Unlock()
	if w := fl.hub.waiting[fl.id]; w != nil {
		delete(w, fl)
		if len(w) == 0 {
			delete(fl.hub.waiting, fl.id)
		}
	}
	if f := fl.feed; f != nil {
		f.mu.Lock()
		delete(f.followers, fl)
		f.mu.Unlock()
	}
}
