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
	// claim marks up to @limit pending jobs of @kinds (oldest first)
	// running on @node with started_at @started, and returns their id,
	// kind, args, submitted_at, attempt, trigger, retry_of, series,
	// run_at, request_id and trace_parent. It claims nothing unless the node's row exists with a heartbeat younger than @fresh ms: a node
	// that was declared dead, or that cannot prove it is alive, takes no
	// work, in the very statement that would take it. On PostgreSQL it
	// also notifies the other nodes of the jobs it claimed.
	claim string
	// notify, when not empty, sends one notification (channel, payload)
	// inside the current transaction; it is delivered at commit.
	notify string
}

var (
	sqliteDialect = dialect{
		name:  "sqlite",
		nowMS: sqliteNowMS,
		// SQLite has one writer at a time (transactions are immediate), so
		// the sub-select and the update see the same rows: two processes
		// cannot claim the same job.
		claim: `UPDATE jobs SET status = 'running', started_at = @started, node = @node
WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' AND kind IN @kinds ORDER BY submitted_at, id LIMIT @limit)
AND EXISTS (SELECT 1 FROM chapkit_nodes WHERE id = @node AND heartbeat_ms >= ` + sqliteNowMS + ` - @fresh)
RETURNING id, kind, args, submitted_at, attempt, trigger, retry_of, series, run_at, request_id, trace_parent`,
	}
	postgresDialect = dialect{
		name:  "postgres",
		nowMS: postgresNowMS,
		// SKIP LOCKED lets concurrent claimers pass over each other's rows
		// instead of queueing behind them; the outer status check keeps a
		// row that changed after the sub-select from being claimed.
		//
		// The claim tells the other nodes itself (their subscribers see
		// the jobs start), so that it is one statement in its own
		// transaction: no BEGIN, separate NOTIFY and COMMIT around it.
		// The notification goes out only when a job was claimed.
		claim: `WITH next AS (
  SELECT id FROM jobs WHERE status = 'pending' AND kind IN @kinds ORDER BY submitted_at, id LIMIT @limit FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE jobs SET status = 'running', started_at = @started, node = @node
  FROM next WHERE jobs.id = next.id AND jobs.status = 'pending'
  AND EXISTS (SELECT 1 FROM chapkit_nodes WHERE id = @node AND heartbeat_ms >= ` + postgresNowMS + ` - @fresh)
  RETURNING jobs.id, jobs.kind, jobs.args, jobs.submitted_at, jobs.attempt, jobs.trigger, jobs.retry_of, jobs.series, jobs.run_at, jobs.request_id, jobs.trace_parent
)
SELECT claimed.* FROM claimed,
  (SELECT pg_notify('` + notifyChannel + `', '` + opChanged + ` ' || @node || ' ' || string_agg(id, ',')) FROM claimed HAVING count(*) > 0) AS told`,
		notify: "SELECT pg_notify(?, ?)",
	}
)

const (
	sqliteNowMS   = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
	postgresNowMS = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
)

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
