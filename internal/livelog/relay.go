package livelog

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/job"
)

// Bus carries the relay's messages between the nodes sharing a database
// (PostgreSQL NOTIFY and LISTEN on one channel). Every node receives every
// message, its own included, in the order they were sent.
type Bus interface {
	// Send delivers payload to every listening node.
	Send(ctx context.Context, payload string) error
	// Listen calls fn for each payload received until ctx ends, and
	// connected after every (re)connection, from one goroutine.
	Listen(ctx context.Context, connected func(), fn func(payload string))
}

// Channel is the PostgreSQL notification channel of the relay.
const Channel = "chapkit_logs"

// MaxPayload is the largest message the relay sends, in bytes: PostgreSQL
// refuses notification payloads of 8000 bytes or more, so output is split
// to stay below.
const MaxPayload = 7900

// Default timings of a [Relay].
const (
	// DefaultRenew is how often a node that shows a remote job's output
	// asks the running node again to keep relaying it.
	DefaultRenew = 2 * time.Second
	// DefaultGrace is how long a viewer waits, after learning that the
	// job finished, for the end of its relayed output before ending it
	// without an exit code.
	DefaultGrace = 2 * time.Second
)

// Relay carries the live output of jobs between nodes. On the node that
// runs a job it relays the job's feed while another node asks for it; on a
// node that shows the output of a job running elsewhere it asks for it and
// feeds what arrives into a feed of its own hub, so its followers read it
// like local output, with the same bounds (see docs/live-output.md).
//
// Messages are one line of space-separated fields, the job and the node
// that watches it first:
//
//	w <job> <viewer>                      watch, or renew a watch
//	u <job> <viewer>                      stop watching
//	o <job> <viewer> <stream> <text>      output; text is a JSON string
//	s <job> <viewer> <stdout> <stderr>    bytes the runner's side skipped
//	e <job> <viewer> <exit code or ->     the end
//
// A watch lapses when it is not renewed for three renewal periods, so
// nothing is sent once nobody watches, even when a viewing node died. It
// is safe for concurrent use. Start it once; it cannot be restarted after
// Stop.
type Relay struct {
	cfg RelayConfig

	ctx    context.Context // the relay's lifetime, set by Start
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// listening is set once the bus listens: a watch sent before would
	// be answered with output this node could not receive.
	listening atomic.Bool

	mu      sync.Mutex
	stopped bool                // set by Stop: no new goroutines
	watched map[string]*watch   // jobs this node shows, running elsewhere
	sending map[string]*sending // "<job> <viewer>": jobs relayed from here
}

// RelayConfig configures a [Relay].
type RelayConfig struct {
	// Node is this node's id, as messages name it.
	Node string
	// Hub holds the feeds of this node.
	Hub *Hub
	// Bus carries the messages.
	Bus Bus
	// Jobs tells a viewer when a watched job finished.
	Jobs interface {
		Subscribe(id string) (<-chan job.Event, func())
	}
	// Renew is the renewal period of a watch; 0 means DefaultRenew.
	Renew time.Duration
	// Grace is how long a viewer waits for the end after the job
	// finished; 0 means DefaultGrace.
	Grace time.Duration
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
}

type watch struct {
	refs   int
	mirror *Feed // opened by the first message from the running node
	stop   func()
}

type sending struct {
	fl      *Follower
	expires time.Time // guarded by Relay.mu
}

// NewRelay returns a relay; call Start to run it.
func NewRelay(cfg RelayConfig) *Relay {
	if cfg.Renew <= 0 {
		cfg.Renew = DefaultRenew
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Relay{cfg: cfg, watched: map[string]*watch{}, sending: map[string]*sending{}}
}

// Start runs the relay until Stop.
func (r *Relay) Start() {
	// The relay owns its lifetime context: it outlives the call that
	// starts it and ends with Stop.
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		r.cfg.Bus.Listen(r.ctx, func() {
			r.listening.Store(true)
			r.renewAll() // watches made before, or missed while reconnecting
		}, r.receive)
	}()
	go func() {
		defer r.wg.Done()
		tick := time.NewTicker(r.cfg.Renew)
		defer tick.Stop()
		for {
			select {
			case <-r.ctx.Done():
				return
			case <-tick.C:
				r.renewAll()
			}
		}
	}()
}

// Stop ends the relay and waits for its goroutines; mirrored feeds end
// without an exit code.
func (r *Relay) Stop() {
	if r.cancel == nil {
		return
	}
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, w := range r.watched {
		if w.mirror != nil {
			w.mirror.Close(nil)
		}
		delete(r.watched, id)
	}
}

func (r *Relay) send(kind, jobID, viewer, rest string) {
	p := kind + " " + jobID + " " + viewer
	if rest != "" {
		p += " " + rest
	}
	if err := r.cfg.Bus.Send(r.ctx, p); err != nil && r.ctx.Err() == nil {
		r.cfg.Logger.Warn("relay job output", "job_id", jobID, "error", err)
	}
}

// Watch asks the node running job id to relay its output here, until the
// returned function is called; the output arrives in a feed of this
// node's hub, so followers of id receive it. It is a no-op while the job's
// feed is in this process.
func (r *Relay) Watch(id string) (stop func()) {
	r.mu.Lock()
	if r.stopped || r.ctx == nil {
		r.mu.Unlock()
		return func() {}
	}
	w := r.watched[id]
	first := w == nil
	if first {
		w = &watch{}
		r.watched[id] = w
		w.stop = r.endWhenFinished(id)
	}
	w.refs++
	r.mu.Unlock()
	if first && r.listening.Load() {
		r.send("w", id, r.cfg.Node, "")
	}
	var once sync.Once
	return func() { once.Do(func() { r.unwatch(id, w) }) }
}

func (r *Relay) unwatch(id string, w *watch) {
	r.mu.Lock()
	w.refs--
	last := w.refs == 0 && r.watched[id] == w
	if last {
		delete(r.watched, id)
	}
	r.mu.Unlock()
	if !last {
		return
	}
	w.stop()
	if w.mirror != nil {
		w.mirror.Close(nil)
	}
	r.send("u", id, r.cfg.Node, "")
}

// endWhenFinished ends the mirror of id once the job finished and its end
// has not arrived within the grace period (the running node died, or the
// message was lost). The caller holds r.mu, so Stop cannot be waiting.
func (r *Relay) endWhenFinished(id string) func() {
	if r.cfg.Jobs == nil {
		return func() {}
	}
	events, unsubscribe := r.cfg.Jobs.Subscribe(id)
	done := make(chan struct{})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			select {
			case ev := <-events:
				if !ev.Deleted && (ev.Job == nil || !ev.Job.Status.Terminal()) {
					continue
				}
				t := time.NewTimer(r.cfg.Grace)
				select {
				case <-t.C:
					r.endMirror(id, nil)
				case <-done:
				case <-r.ctx.Done():
				}
				t.Stop()
				return
			case <-done:
				return
			case <-r.ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); unsubscribe() }
}

// renewAll renews every watch of this node.
func (r *Relay) renewAll() {
	r.mu.Lock()
	ids := make([]string, 0, len(r.watched))
	for id := range r.watched {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.send("w", id, r.cfg.Node, "")
	}
}

// receive acts on one message.
func (r *Relay) receive(payload string) {
	kind, rest, _ := strings.Cut(payload, " ")
	id, rest, _ := strings.Cut(rest, " ")
	viewer, rest, _ := strings.Cut(rest, " ")
	if id == "" || viewer == "" {
		return
	}
	switch kind {
	case "w":
		if viewer != r.cfg.Node {
			r.startSending(id, viewer)
		}
	case "u":
		r.mu.Lock()
		if s := r.sending[id+" "+viewer]; s != nil {
			s.expires = time.Time{} // its pump sees it lapsed
		}
		r.mu.Unlock()
	case "o", "s", "e":
		if viewer == r.cfg.Node {
			r.mirror(kind, id, rest)
		}
	}
}

// startSending relays the feed of job id to viewer, if the job runs here.
func (r *Relay) startSending(id, viewer string) {
	key := id + " " + viewer
	expires := time.Now().Add(3 * r.cfg.Renew)
	r.mu.Lock()
	if s := r.sending[key]; s != nil {
		s.expires = expires
		r.mu.Unlock()
		return
	}
	if r.stopped || !r.cfg.Hub.Running(id) {
		r.mu.Unlock()
		return
	}
	s := &sending{fl: r.cfg.Hub.Follow(id), expires: expires}
	r.sending[key] = s
	r.wg.Add(1)
	r.mu.Unlock()
	go r.pump(id, viewer, key, s)
}

// pump sends what the follower receives until the end, or until the watch
// lapses.
func (r *Relay) pump(id, viewer, key string, s *sending) {
	defer r.wg.Done()
	defer func() {
		s.fl.Close()
		r.mu.Lock()
		if r.sending[key] == s {
			delete(r.sending, key)
		}
		r.mu.Unlock()
	}()
	tick := time.NewTicker(r.cfg.Renew)
	defer tick.Stop()
	for {
		var batch []Event
		for {
			ev, ok := s.fl.TryNext()
			if !ok {
				break
			}
			batch = append(batch, ev)
		}
		// "o <job> <viewer> <stream> " comes before the text.
		for _, m := range encode(batch, MaxPayload-len(id)-len(viewer)-6) {
			r.send(m.kind, id, viewer, m.rest)
		}
		if len(batch) > 0 && batch[len(batch)-1].Kind == End {
			return
		}
		select {
		case <-s.fl.Ready():
		case <-tick.C:
			r.mu.Lock()
			lapsed := time.Now().After(s.expires)
			r.mu.Unlock()
			if lapsed {
				return
			}
		case <-r.ctx.Done():
			return
		}
	}
}

type message struct{ kind, rest string }

// encode turns events into messages, joining consecutive text of one
// stream and splitting it so that the encoded text of no message exceeds
// room bytes.
func encode(events []Event, room int) []message {
	room = max(room, 64) // node ids are short; never loop on a tiny room
	var out []message
	var text strings.Builder
	stream := shell.Stdout
	flush := func() {
		out = append(out, splitText(stream, text.String(), room)...)
		text.Reset()
	}
	for _, ev := range events {
		switch ev.Kind {
		case Output:
			if text.Len() > 0 && ev.Stream != stream {
				flush()
			}
			stream = ev.Stream
			text.WriteString(ev.Text)
		case Skipped:
			if text.Len() > 0 {
				flush()
			}
			out = append(out, message{"s", strconv.FormatInt(ev.SkippedStdout, 10) + " " + strconv.FormatInt(ev.SkippedStderr, 10)})
		case End:
			if text.Len() > 0 {
				flush()
			}
			code := "-"
			if ev.ExitCode != nil {
				code = strconv.Itoa(*ev.ExitCode)
			}
			out = append(out, message{"e", code})
		}
	}
	if text.Len() > 0 {
		flush()
	}
	return out
}

// splitText returns output messages carrying text whose JSON encoding
// fits in room bytes each, cut after a newline where possible and never
// inside a character.
func splitText(s shell.Stream, text string, room int) []message {
	var out []message
	for len(text) > 0 {
		n := min(len(text), room)
		for {
			piece := text[:n]
			if n < len(text) {
				if i := strings.LastIndexByte(piece, '\n'); i >= n/2 {
					piece = piece[:i+1]
				} else {
					piece = piece[:runeCut([]byte(piece))]
				}
			}
			b, _ := json.Marshal(piece)
			if len(b) <= room || n == 1 {
				out = append(out, message{"o", strconv.Itoa(int(s)) + " " + string(b)})
				text = text[len(piece):]
				break
			}
			n /= 2 // escapes made it longer: try a shorter piece
		}
	}
	return out
}

// mirror feeds a message from the running node into this node's mirror
// of job id.
func (r *Relay) mirror(kind, id, rest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.watched[id]
	if w == nil {
		return // nobody here watches it any more
	}
	if w.mirror == nil {
		if r.cfg.Hub.Running(id) {
			return // the job runs here now: its own feed serves it
		}
		w.mirror = r.cfg.Hub.Open(id)
	}
	switch kind {
	case "o":
		st, text, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(st)
		var s string
		if err != nil || json.Unmarshal([]byte(text), &s) != nil {
			return
		}
		w.mirror.Write(shell.Stream(n), []byte(s))
	case "s":
		a, b, _ := strings.Cut(rest, " ")
		out, err1 := strconv.ParseInt(a, 10, 64)
		errOut, err2 := strconv.ParseInt(b, 10, 64)
		if err1 == nil && err2 == nil {
			w.mirror.Skip(out, errOut)
		}
	case "e":
		var code *int
		if c, err := strconv.Atoi(rest); err == nil {
			code = &c
		}
		w.mirror.Close(code)
	}
}

// endMirror ends the mirror of id, if it is open.
func (r *Relay) endMirror(id string, code *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if w := r.watched[id]; w != nil && w.mirror != nil {
		w.mirror.Close(code)
	}
}
