package livelog

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/chapkit-go/chapkit/internal/shell"
	"github.com/chapkit-go/chapkit/job"
)

// drain reads fl until End, failing after a deadline.
func drain(t *testing.T, fl *Follower) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(10 * time.Second)
	for {
		if ev, ok := fl.TryNext(); ok {
			out = append(out, ev)
			if ev.Kind == End {
				return out
			}
			continue
		}
		select {
		case <-fl.Ready():
		case <-deadline:
			t.Fatalf("no End event; got %d events", len(out))
		}
	}
}

func intp(n int) *int { return &n }

func TestFeedLines(t *testing.T) {
	h := NewHub()
	fl := h.Follow("j1")
	defer fl.Close()
	if fl.Attached() {
		t.Fatal("attached before the feed opened")
	}
	f := h.Open("j1")
	if !fl.Attached() || !h.Running("j1") {
		t.Fatal("waiting follower not attached on Open")
	}
	f.Write(shell.Stdout, []byte("line 1\nline"))
	f.Write(shell.Stderr, []byte("oops\n"))
	f.Write(shell.Stdout, []byte(" 2\npart"))
	// "part" has no newline: it is flushed after FlushAfter, before Close.
	var got []Event
	for len(got) < 4 {
		select {
		case <-fl.Ready():
		case <-time.After(10 * time.Second):
			t.Fatalf("partial line not flushed; got %+v", got)
		}
		for ev, ok := fl.TryNext(); ok; ev, ok = fl.TryNext() {
			got = append(got, ev)
		}
	}
	f.Write(shell.Stdout, []byte("tail"))
	f.Close(intp(3))
	f.Write(shell.Stdout, []byte("ignored\n"))
	got = append(got, drain(t, fl)...)
	want := []Event{
		{Kind: Output, Stream: shell.Stdout, Text: "line 1\n"},
		{Kind: Output, Stream: shell.Stderr, Text: "oops\n"},
		{Kind: Output, Stream: shell.Stdout, Text: "line 2\n"},
		{Kind: Output, Stream: shell.Stdout, Text: "part"},
		{Kind: Output, Stream: shell.Stdout, Text: "tail"},
		{Kind: End, ExitCode: intp(3)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if h.Running("j1") {
		t.Error("feed still in the hub after Close")
	}
}

// TestFollowerSkips writes far more than a follower may queue while it
// does not read: the writer never blocks, and every byte is either
// delivered or counted as skipped.
func TestFollowerSkips(t *testing.T) {
	h := NewHub()
	f := h.Open("j")
	fl := h.Follow("j")
	defer fl.Close()
	line := strings.Repeat("x", 99) + "\n"
	const lines = 10_000 // 1 MB, four times FollowerBytes
	for range lines {
		f.Write(shell.Stdout, []byte(line))
	}
	f.Write(shell.Stderr, []byte("err\n"))
	f.Close(intp(0))
	var text, skipped int64
	sawSkip := false
	for _, ev := range drain(t, fl) {
		switch ev.Kind {
		case Output:
			text += int64(len(ev.Text))
		case Skipped:
			sawSkip = true
			skipped += ev.SkippedStdout + ev.SkippedStderr
		}
	}
	if !sawSkip {
		t.Error("no Skipped event for a follower that read nothing while 1 MB was written")
	}
	if text > FollowerBytes {
		t.Errorf("delivered %d bytes, want at most the queue bound %d", text, FollowerBytes)
	}
	if got, want := text+skipped, int64(lines*len(line)+4); got != want {
		t.Errorf("delivered %d + skipped %d = %d bytes, want %d", text, skipped, got, want)
	}
}

// TestLateFollowerBacklog joins after more than the backlog was written:
// it is told how much it missed, then gets the backlog and live text.
func TestLateFollowerBacklog(t *testing.T) {
	h := NewHub()
	f := h.Open("j")
	line := strings.Repeat("y", 1023) + "\n"
	for range 100 { // 100 KiB, more than BacklogBytes
		f.Write(shell.Stdout, []byte(line))
	}
	fl := h.Follow("j")
	defer fl.Close()
	f.Write(shell.Stdout, []byte("live\n"))
	f.Close(nil)
	evs := drain(t, fl)
	if evs[0].Kind != Skipped || evs[0].SkippedStdout != 100*1024-BacklogBytes {
		t.Fatalf("first event %+v, want Skipped of %d stdout bytes", evs[0], 100*1024-BacklogBytes)
	}
	var text strings.Builder
	for _, ev := range evs[1 : len(evs)-1] {
		text.WriteString(ev.Text)
	}
	if want := strings.Repeat(line, BacklogBytes/1024) + "live\n"; text.String() != want {
		t.Errorf("backlog and live text: %d bytes, want %d", text.Len(), len(want))
	}
}

func TestLongLineCutOnRuneBoundary(t *testing.T) {
	h := NewHub()
	f := h.Open("j")
	fl := h.Follow("j")
	defer fl.Close()
	long := strings.Repeat("é", LineHold) // 2 bytes each, no newline
	f.Write(shell.Stdout, []byte("a"+long))
	f.Close(nil)
	var joined strings.Builder
	for _, ev := range drain(t, fl) {
		if strings.ContainsRune(ev.Text, '\uFFFD') {
			t.Fatalf("chunk %q contains a replacement character: a cut split a rune", ev.Text[:20])
		}
		joined.WriteString(ev.Text)
	}
	if joined.String() != "a"+long {
		t.Error("text differs from what was written")
	}
}

// fakeJobs is a scheduler with one job whose state the test sets.
type fakeJobs struct {
	j  job.Job
	ch chan job.Event
}

func (f *fakeJobs) Get(_ context.Context, id string) (*job.Job, error) {
	if id != f.j.ID {
		return nil, errors.New("not found")
	}
	c := f.j
	return &c, nil
}

func (f *fakeJobs) Subscribe(string) (<-chan job.Event, func()) { return f.ch, func() {} }

func readAll(t *testing.T, r *Reader) []Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var out []Event
	for {
		ev, err := r.Next(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

func TestReaderReplaysFinishedJob(t *testing.T) {
	art := "a1"
	jobs := &fakeJobs{j: job.Job{ID: "j", Status: job.StatusCompleted, ArtifactID: &art}, ch: make(chan job.Event)}
	data := func(_ context.Context, id string) (json.RawMessage, error) {
		return json.RawMessage(`{"stdout":"out 1\nout 2\n","stderr":"err\n","exit_code":2}`), nil
	}
	r, err := NewReader(t.Context(), NewHub(), jobs, data, "j")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := []Event{
		{Kind: Output, Stream: shell.Stdout, Text: "out 1\nout 2\n"},
		{Kind: Output, Stream: shell.Stderr, Text: "err\n"},
		{Kind: End, ExitCode: intp(2)},
	}
	if diff := cmp.Diff(want, readAll(t, r)); diff != "" {
		t.Errorf("replay (-want +got):\n%s", diff)
	}
	if _, err := NewReader(t.Context(), NewHub(), jobs, data, "other"); err == nil {
		t.Error("NewReader of an unknown job: no error")
	}
}

// TestReaderWaitsForRemoteJob follows a job that runs elsewhere (no feed
// here): nothing arrives until the job finishes, then its output replays.
func TestReaderWaitsForRemoteJob(t *testing.T) {
	art := "a1"
	jobs := &fakeJobs{j: job.Job{ID: "j", Status: job.StatusRunning}, ch: make(chan job.Event, 1)}
	data := func(context.Context, string) (json.RawMessage, error) {
		return json.RawMessage(`{"stdout":"done\n","stderr":"","exit_code":0}`), nil
	}
	r, err := NewReader(t.Context(), NewHub(), jobs, data, "j")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	short, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if ev, err := r.Next(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on a running remote job = %+v, %v; want the deadline", ev, err)
	}
	jobs.ch <- job.Event{Job: &job.Job{ID: "j", Status: job.StatusCompleted, ArtifactID: &art}}
	want := []Event{{Kind: Output, Stream: shell.Stdout, Text: "done\n"}, {Kind: End, ExitCode: intp(0)}}
	if diff := cmp.Diff(want, readAll(t, r)); diff != "" {
		t.Errorf("replay after finish (-want +got):\n%s", diff)
	}
}

// BenchmarkFeedWrite measures what the feed adds to reading a command's
// output: 32 KiB chunks of 100-byte lines, with no follower and with one
// that reads everything.
func BenchmarkFeedWrite(b *testing.B) {
	chunk := []byte(strings.Repeat(strings.Repeat("z", 99)+"\n", 32<<10/100))
	for _, followers := range []int{0, 1} {
		b.Run(map[int]string{0: "no follower", 1: "one follower"}[followers], func(b *testing.B) {
			h := NewHub()
			f := h.Open("j")
			defer f.Close(nil)
			if followers == 1 {
				fl := h.Follow("j")
				defer fl.Close()
				done := make(chan struct{})
				defer func() { <-done }()
				defer f.Close(nil)
				go func() {
					defer close(done)
					for {
						ev, ok := fl.TryNext()
						if !ok {
							<-fl.Ready()
							continue
						}
						if ev.Kind == End {
							return
						}
					}
				}()
			}
			b.SetBytes(int64(len(chunk)))
			for b.Loop() {
				f.Write(shell.Stdout, chunk)
			}
		})
	}
}

func TestInvalidUTF8IsReplaced(t *testing.T) {
	h := NewHub()
	f := h.Open("j")
	fl := h.Follow("j")
	defer fl.Close()
	f.Write(shell.Stderr, []byte("bad \xff byte\n"))
	f.Close(nil)
	want := []Event{{Kind: Output, Stream: shell.Stderr, Text: "bad \uFFFD byte\n"}, {Kind: End}}
	if diff := cmp.Diff(want, drain(t, fl)); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestConcurrentFollowersAndRuns runs feeds and followers that come and go
// at the same time, for the race detector and to catch lock-order
// deadlocks: every follower attached to a run ends with End.
func TestConcurrentFollowersAndRuns(t *testing.T) {
	h := NewHub()
	var wg sync.WaitGroup
	for run := range 20 {
		id := "j" + strconv.Itoa(run%4) // runs of the same id replace each other
		wg.Go(func() {
			f := h.Open(id)
			for i := range 50 {
				f.Write(shell.Stream(i%2), []byte("x\n"))
			}
			f.Close(intp(run))
		})
		wg.Go(func() {
			fl := h.Follow(id)
			defer fl.Close()
			if !fl.Attached() {
				return // the run had not opened or was already over
			}
			drain(t, fl)
		})
	}
	wg.Wait()
	for i := range 4 {
		if h.Running("j" + strconv.Itoa(i)) {
			t.Errorf("feed j%d still open after every run closed", i)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.waiting) != 0 {
		t.Errorf("%d ids still have waiting followers after all closed", len(h.waiting))
	}
}
