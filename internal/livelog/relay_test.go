package livelog

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/internal/testkit"
	"github.com/chapkit-go/chapkit/job"
)

// memBus is an in-process Bus: every listener receives every payload, in
// the order sent. It fails the test on a payload PostgreSQL would refuse.
type memBus struct {
	t     *testing.T
	mu    sync.Mutex
	lists []chan string
	sent  []string
}

func (b *memBus) Send(ctx context.Context, p string) error {
	if len(p) >= 8000 {
		b.t.Errorf("payload of %d bytes: PostgreSQL refuses 8000 or more", len(p))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = append(b.sent, p)
	for _, c := range b.lists {
		c <- p
	}
	return nil
}

func (b *memBus) Listen(ctx context.Context, connected func(), fn func(string)) {
	c := make(chan string, 100_000)
	b.mu.Lock()
	b.lists = append(b.lists, c)
	b.mu.Unlock()
	connected()
	for {
		select {
		case p := <-c:
			fn(p)
		case <-ctx.Done():
			return
		}
	}
}

// sentCount returns how many payloads starting with prefix were sent.
func (b *memBus) sentCount(prefix string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, p := range b.sent {
		if strings.HasPrefix(p, prefix) {
			n++
		}
	}
	return n
}

// finishJobs lets a test announce a job's end to a viewer's relay.
type finishJobs struct {
	mu   sync.Mutex
	subs []chan job.Event
}

func (f *finishJobs) Subscribe(id string) (<-chan job.Event, func()) {
	c := make(chan job.Event, 4)
	f.mu.Lock()
	f.subs = append(f.subs, c)
	f.mu.Unlock()
	return c, func() {}
}

func (f *finishJobs) finish() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range f.subs {
		c <- job.Event{Job: &job.Job{Status: job.StatusCompleted}}
	}
}

const viewerNode = "viewer-node-with-a-configured-id-longer-than-a-ulid"

type relayPair struct {
	bus             *memBus
	runner, viewer  *Relay
	runHub, viewHub *Hub
	jobs            *finishJobs
}

func newRelayPair(t *testing.T) *relayPair {
	t.Helper()
	p := &relayPair{bus: &memBus{t: t}, runHub: NewHub(), viewHub: NewHub(), jobs: &finishJobs{}}
	cfg := RelayConfig{Bus: p.bus, Renew: 20 * time.Millisecond, Grace: 50 * time.Millisecond}
	rc, vc := cfg, cfg
	rc.Node, rc.Hub = "NODE_A", p.runHub
	// A configured node id may be longer than a ULID: the split must
	// leave room for it.
	vc.Node, vc.Hub, vc.Jobs = viewerNode, p.viewHub, p.jobs
	p.runner, p.viewer = NewRelay(rc), NewRelay(vc)
	p.viewHub.SetRemote(p.viewer)
	p.runner.Start()
	p.viewer.Start()
	t.Cleanup(func() { p.viewer.Stop(); p.runner.Stop() })
	// As with a LISTEN, what is sent before a node listens is not received.
	waitFor(t, "both relays to listen", func() bool {
		p.bus.mu.Lock()
		defer p.bus.mu.Unlock()
		return len(p.bus.lists) == 2
	})
	return p
}

func (p *relayPair) sendingCount() int {
	p.runner.mu.Lock()
	defer p.runner.mu.Unlock()
	return len(p.runner.sending)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, what, cond)
}

// text joins the Output events of one stream.
func text(events []Event, s shell.Stream) string {
	var b strings.Builder
	for _, ev := range events {
		if ev.Kind == Output && ev.Stream == s {
			b.WriteString(ev.Text)
		}
	}
	return b.String()
}

func TestRelay(t *testing.T) {
	t.Run("output of a job running on another node, split below the payload limit", func(t *testing.T) {
		p := newRelayPair(t)
		feed := p.runHub.Open("J1")
		feed.Write(shell.Stdout, []byte("before the viewer\n"))
		fl := p.viewHub.Follow("J1")
		defer fl.Close()
		stop := p.viewer.Watch("J1")
		defer stop()
		waitFor(t, "the runner to relay", func() bool { return p.sendingCount() == 1 })
		long := strings.Repeat("quotes \" and \x01 control and é\n", 1000) // about 32 KiB, escapes grow it
		feed.Write(shell.Stdout, []byte(long))
		feed.Write(shell.Stderr, []byte("to stderr\n"))
		feed.Close(new(3))
		events := drain(t, fl)
		if diff := cmp.Diff("before the viewer\n"+long, text(events, shell.Stdout)); diff != "" {
			t.Errorf("stdout mismatch (-want +got):\n%s", diff)
		}
		if got := text(events, shell.Stderr); got != "to stderr\n" {
			t.Errorf("stderr = %q", got)
		}
		if end := events[len(events)-1]; end.ExitCode == nil || *end.ExitCode != 3 {
			t.Errorf("end = %+v, want exit code 3", end)
		}
		if n := p.bus.sentCount("o J1 " + viewerNode); n < 5 {
			t.Errorf("%d output messages, want the long text split in several", n)
		}
		waitFor(t, "the runner to stop relaying after the end", func() bool { return p.sendingCount() == 0 })
	})

	t.Run("skipped bytes are passed on", func(t *testing.T) {
		p := newRelayPair(t)
		feed := p.runHub.Open("J2")
		fl := p.viewHub.Follow("J2")
		defer fl.Close()
		stop := p.viewer.Watch("J2")
		defer stop()
		waitFor(t, "the runner to relay", func() bool { return p.sendingCount() == 1 })
		// A follower of the runner's feed that fell behind: simulate what
		// it forwards by sending the skip message itself.
		_ = p.bus.Send(t.Context(), "s J2 "+viewerNode+" 10 7")
		feed.Write(shell.Stdout, []byte("after\n"))
		feed.Close(nil)
		var skipped Event
		for _, ev := range drain(t, fl) {
			if ev.Kind == Skipped {
				skipped = ev
			}
		}
		if skipped.SkippedStdout != 10 || skipped.SkippedStderr != 7 {
			t.Errorf("skipped = %+v, want 10 and 7", skipped)
		}
	})

	t.Run("nothing is sent once nobody watches", func(t *testing.T) {
		p := newRelayPair(t)
		feed := p.runHub.Open("J3")
		defer feed.Close(nil)
		stop := p.viewer.Watch("J3")
		waitFor(t, "the runner to relay", func() bool { return p.sendingCount() == 1 })
		stop()
		waitFor(t, "the runner to stop after the unwatch", func() bool { return p.sendingCount() == 0 })
		before := p.bus.sentCount("o J3")
		feed.Write(shell.Stdout, []byte("nobody reads this\n"))
		if got := p.bus.sentCount("o J3"); got != before {
			t.Errorf("output sent after the unwatch: %d messages", got-before)
		}

		// A watch that is never renewed (its viewer died) lapses.
		_ = p.bus.Send(t.Context(), "w J3 NODE_GONE")
		waitFor(t, "the runner to relay to the dead viewer", func() bool { return p.sendingCount() == 1 })
		waitFor(t, "the watch of the dead viewer to lapse", func() bool { return p.sendingCount() == 0 })
	})

	t.Run("a finished job whose end never arrives ends after the grace period", func(t *testing.T) {
		p := newRelayPair(t)
		feed := p.runHub.Open("J4")
		fl := p.viewHub.Follow("J4")
		defer fl.Close()
		stop := p.viewer.Watch("J4")
		defer stop()
		feed.Write(shell.Stdout, []byte("partial\n"))
		waitFor(t, "the first line to arrive", func() bool { return fl.Attached() })
		p.runner.Stop() // the running node dies: no end message
		p.jobs.finish()
		events := drain(t, fl)
		if end := events[len(events)-1]; end.ExitCode != nil {
			t.Errorf("end = %+v, want no exit code", end)
		}
	})
}
