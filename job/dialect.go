package job

import (
	"fmt"
	"strings"

	"gorm.io/gorm"
)

// dialect holds the statements of the scheduler's hot path and of its node
// bookkeeping, written by hand for each engine. GORM turns the ? markers
// into the engine's own placeholders.
//
// Times of nodes and leases are integers of milliseconds since the Unix
// epoch taken from the database's clock (nowMS), so nodes on several
// machines compare heartbeats against one clock, not against their own.
type dialect struct {
	name string
	// nowMS is an SQL expression for the database's current time in ms.
	nowMS string
	// claim marks up to ? pending jobs (oldest first) running on node ?
	// and returns their id, kind, args, submitted_at, attempt, trigger,
	// retry_of, series and run_at. Arguments: started_at, node, limit.
	claim string
	// notify, when not empty, sends one notification (channel, payload)
	// inside the current transaction; it is delivered at commit.
	notify string
}

var (
	sqliteDialect = dialect{
		name:  "sqlite",
		nowMS: "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
		// SQLite has one writer at a time (transactions are immediate), so
		// the sub-select and the update see the same rows: two processes
		// cannot claim the same job.
		claim: `UPDATE jobs SET status = 'running', started_at = ?, node = ?
WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' ORDER BY submitted_at, id LIMIT ?)
RETURNING id, kind, args, submitted_at, attempt, trigger, retry_of, series, run_at`,
	}
	postgresDialect = dialect{
		name:  "postgres",
		nowMS: "(extract(epoch from clock_timestamp()) * 1000)::bigint",
		// SKIP LOCKED lets concurrent claimers pass over each other's rows
		// instead of queueing behind them; the outer status check keeps a
		// row that changed after the sub-select from being claimed.
		claim: `WITH next AS (
  SELECT id FROM jobs WHERE status = 'pending' ORDER BY submitted_at, id LIMIT ? FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET status = 'running', started_at = ?, node = ?
FROM next WHERE jobs.id = next.id AND jobs.status = 'pending'
RETURNING jobs.id, jobs.kind, jobs.args, jobs.submitted_at, jobs.attempt, jobs.trigger, jobs.retry_of, jobs.series, jobs.run_at`,
		notify: "SELECT pg_notify(?, ?)",
	}
)

// claimArgs orders the claim statement's arguments for the dialect.
func (d dialect) claimArgs(startedAt any, node string, limit int) []any {
	if d.name == "postgres" {
		return []any{limit, startedAt, node}
	}
	return []any{startedAt, node, limit}
}

// dialectOf picks the statements for db's engine.
func dialectOf(db *gorm.DB) (dialect, error) {
	switch name := db.Dialector.Name(); {
	case name == "sqlite" || strings.HasPrefix(name, "sqlite"):
		return sqliteDialect, nil
	case name == "postgres":
		return postgresDialect, nil
	default:
		return dialect{}, fmt.Errorf("job: database engine %q is not supported (use SQLite or PostgreSQL)", name)
	}
}
