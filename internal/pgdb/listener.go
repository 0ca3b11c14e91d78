package pgdb

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Listener receives PostgreSQL notifications on a connection of its own
// (LISTEN holds a session, so it cannot share the pool). It reconnects
// after any failure, backing off from 100 ms to 5 s. The zero value is not
// usable; use [NewListener].
type Listener struct {
	url string
	log *slog.Logger
}

// NewListener returns a listener connecting to url; log may be nil.
func NewListener(url string, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{url: strings.TrimSpace(url), log: log}
}

// Listen implements job.Listener: it calls connected after each successful
// LISTEN and fn for each payload received on channel, until ctx ends.
func (l *Listener) Listen(ctx context.Context, channel string, connected func(), fn func(payload string)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := l.session(ctx, channel, connected, fn)
		if ctx.Err() != nil {
			return
		}
		l.log.Warn("notification listener disconnected; reconnecting", "error", redact(err, l.url), "after", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (l *Listener) session(ctx context.Context, channel string, connected func(), fn func(string)) error {
	conn, err := pgx.Connect(ctx, l.url)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		return err
	}
	connected()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		fn(n.Payload)
	}
}
