package pgdb

import (
	"context"
	"log/slog"

	"gorm.io/gorm"
)

// Bus sends and receives notifications on one PostgreSQL channel: sending
// goes through db's pool, receiving through a [Listener]'s connection of
// its own. It is safe for concurrent use.
type Bus struct {
	db      *gorm.DB
	l       *Listener
	channel string
}

// NewBus returns a bus on channel of the database at url, which db is
// connected to; log may be nil.
func NewBus(db *gorm.DB, url, channel string, log *slog.Logger) *Bus {
	return &Bus{db: db, l: NewListener(url, log), channel: channel}
}

// Send notifies every listener of the channel. PostgreSQL refuses a
// payload of 8000 bytes or more.
func (b *Bus) Send(ctx context.Context, payload string) error {
	return b.db.WithContext(ctx).Exec("SELECT pg_notify(?, ?)", b.channel, payload).Error
}

// Listen calls fn for each payload received until ctx ends, and connected
// after each (re)connection, reconnecting after failures.
func (b *Bus) Listen(ctx context.Context, connected func(), fn func(payload string)) {
	b.l.Listen(ctx, b.channel, connected, fn)
}
