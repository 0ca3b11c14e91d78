package job

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
)

// The statements of the hot path (inserting jobs, completing them) are
// written by hand and sent straight to the connection or transaction
// under GORM: they run thousands of times a second, and GORM's reflection
// and statement building cost more than the database's own work. Each is
// multi-row, so a batch of the writer's is one statement per table. On
// PostgreSQL they take one array per column, so that their text does not
// change with the number of rows.

// sqlPool is what both *sql.DB and *sql.Tx offer.
type sqlPool interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// poolOf returns the connection or transaction under a GORM handle.
func poolOf(db *gorm.DB) sqlPool {
	if p, ok := db.Statement.ConnPool.(sqlPool); ok {
		return p
	}
	return nil
}

// bind turns the ? markers of query into the engine's placeholders
// ($1, $2, … on PostgreSQL). Our statements hold no ? inside literals.
func (d dialect) bind(query string) string {
	if d.name != "postgres" {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + len(query)/4)
	n := 0
	for i := 0; i < len(query); i++ {
		if query[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(query[i])
	}
	return b.String()
}

// rowsSQL returns n copies of row separated by commas: the VALUES list of
// a multi-row statement.
func rowsSQL(row string, n int) string {
	var b strings.Builder
	b.Grow(n * (len(row) + 2))
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

// jobColumns are the columns insertJobs writes, in order.
const jobColumns = "id, kind, args, status, submitted_at, started_at, node, attempt, trigger, retry_of, series, run_at, request_id, trace_parent"

// maxInsertRows bounds the rows of one INSERT, so that its parameters
// stay within both engines' limits (32,766 on SQLite, 65,535 on
// PostgreSQL).
const maxInsertRows = 500

// insertJobs stores jobs, with one statement per maxInsertRows jobs.
func (s *Scheduler) insertJobs(ctx context.Context, p sqlPool, jobs []*Job) error {
	for len(jobs) > maxInsertRows {
		if err := s.insertJobs(ctx, p, jobs[:maxInsertRows]); err != nil {
			return err
		}
		jobs = jobs[maxInsertRows:]
	}
	if s.d.name == "postgres" {
		return insertJobsPG(ctx, p, jobs)
	}
	const row = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
	args := make([]any, 0, len(jobs)*14)
	for _, j := range jobs {
		var args0 any
		if j.Args != nil {
			args0 = []byte(j.Args)
		}
		args = append(args, j.ID, j.Kind, args0, string(j.Status), j.SubmittedAt, j.StartedAt, j.Node,
			j.Attempt, j.Trigger, j.RetryOf, j.Series, j.RunAt, j.RequestID, j.TraceParent)
	}
	_, err := p.ExecContext(ctx, s.d.bind("INSERT INTO jobs ("+jobColumns+") VALUES "+rowsSQL(row, len(jobs))), args...)
	return err
}

// insertJobsPGSQL stores jobs from one array per column. Its text is the
// same whatever the number of rows, so each connection prepares and plans
// it once, where a VALUES list of n rows would be a new statement for
// every n.
const insertJobsPGSQL = "INSERT INTO jobs (" + jobColumns + ") SELECT * FROM unnest($1::text[], $2::text[], $3::text[]::json[], $4::text[], " +
	"$5::timestamptz[], $6::timestamptz[], $7::text[], $8::int[], $9::text[], $10::text[], $11::text[], $12::timestamptz[], $13::text[], $14::text[])"

// insertJobsPG is insertJobs on PostgreSQL.
func insertJobsPG(ctx context.Context, p sqlPool, jobs []*Job) error {
	n := len(jobs)
	var (
		ids, kinds, statuses                                   = make([]string, n), make([]string, n), make([]string, n)
		args, nodes, triggers, retryOf, series, reqIDs, traces = make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n), make([]*string, n)
		submitted                                              = make([]time.Time, n)
		started, runAt                                         = make([]*time.Time, n), make([]*time.Time, n)
		attempts                                               = make([]int32, n)
	)
	for i, j := range jobs {
		ids[i], kinds[i], statuses[i], submitted[i], attempts[i] = j.ID, j.Kind, string(j.Status), j.SubmittedAt, int32(j.Attempt)
		if j.Args != nil {
			a := string(j.Args)
			args[i] = &a
		}
		started[i], nodes[i], triggers[i], retryOf[i], series[i], runAt[i], reqIDs[i], traces[i] = j.StartedAt, j.Node, j.Trigger, j.RetryOf, j.Series, j.RunAt, j.RequestID, j.TraceParent
	}
	_, err := p.ExecContext(ctx, insertJobsPGSQL, ids, kinds, args, statuses, submitted, started, nodes, attempts, triggers, retryOf, series, runAt, reqIDs, traces)
	return err
}

// completeJobsPGSQL is completeJobs on PostgreSQL, from one array per
// column, for the reason insertJobsPGSQL gives.
const completeJobsPGSQL = "UPDATE jobs SET status = 'completed', finished_at = v.fin, artifact_id = v.art " +
	"FROM unnest($1::text[], $2::int[], $3::timestamptz[], $4::text[]) AS v (id, attempt, fin, art) " +
	"WHERE jobs.id = v.id AND jobs.attempt = v.attempt AND jobs.status = 'running' AND jobs.node = $5 RETURNING jobs.id"

// completion is one row of completeJobs.
type completion struct {
	id       string
	attempt  int
	at       time.Time
	artifact *string
}

// completeJobs marks the jobs completed that still run on this node in
// the same attempt (a compare and set per row) and returns the ids of
// those it changed.
func (s *Scheduler) completeJobs(ctx context.Context, p sqlPool, rows []completion) (map[string]bool, error) {
	if s.d.name != "postgres" && len(rows) <= maxRowByRow {
		return s.completeRowByRow(ctx, p, rows)
	}
	var q string
	var args []any
	if s.d.name == "postgres" {
		n := len(rows)
		ids, attempts, fins, arts := make([]string, n), make([]int32, n), make([]time.Time, n), make([]*string, n)
		for i, r := range rows {
			ids[i], attempts[i], fins[i], arts[i] = r.id, int32(r.attempt), r.at, r.artifact
		}
		q, args = completeJobsPGSQL, []any{ids, attempts, fins, arts, s.node.ID}
	} else {
		// SQLite names the columns of a VALUES list column1, column2, …
		q = "UPDATE jobs SET status = 'completed', finished_at = v.column3, artifact_id = v.column4 FROM (VALUES " + rowsSQL("(?, ?, ?, ?)", len(rows)) +
			") AS v WHERE jobs.id = v.column1 AND jobs.attempt = v.column2 AND jobs.status = 'running' AND jobs.node = ? RETURNING jobs.id"
		args = make([]any, 0, len(rows)*4+1)
		for _, r := range rows {
			args = append(args, r.id, r.attempt, r.at, r.artifact)
		}
		args = append(args, s.node.ID)
	}
	res, err := p.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer res.Close()
	done := make(map[string]bool, len(rows))
	for res.Next() {
		var id string
		if err := res.Scan(&id); err != nil {
			return nil, err
		}
		done[id] = true
	}
	return done, res.Err()
}

// maxRowByRow is the most completions SQLite applies one statement each:
// up to about this many, a plain UPDATE per row costs less than one
// UPDATE joined to a VALUES list, which SQLite first materializes.
const maxRowByRow = 16

// completeRowByRow is completeJobs with one UPDATE per row, all of the
// same text, so the driver reuses its prepared statement.
func (s *Scheduler) completeRowByRow(ctx context.Context, p sqlPool, rows []completion) (map[string]bool, error) {
	const q = "UPDATE jobs SET status = 'completed', finished_at = ?, artifact_id = ? WHERE id = ? AND attempt = ? AND status = 'running' AND node = ?"
	done := make(map[string]bool, len(rows))
	for _, r := range rows {
		res, err := p.ExecContext(ctx, q, r.at, r.artifact, r.id, r.attempt, s.node.ID)
		if err != nil {
			return nil, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return nil, err
		}
		if n == 1 {
			done[r.id] = true
		}
	}
	return done, nil
}

// fresh reports whether this node's heartbeat is recent enough for it to
// take work (the condition of a claim).
func (s *Scheduler) fresh(ctx context.Context, p sqlPool) (bool, error) {
	rows, err := p.QueryContext(ctx, s.d.bind("SELECT 1 FROM chapkit_nodes WHERE id = ? AND heartbeat_ms >= "+s.d.nowMS+" - ?"), s.node.ID, s.freshMS())
	if err != nil {
		return false, err
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}
