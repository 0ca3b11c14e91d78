package job

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"
	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
)

// The writer applies the scheduler's hot-path writes (new jobs, starts,
// completions) in batches: whatever is waiting when it is free goes into
// one transaction, so under concurrency many jobs share one BEGIN/COMMIT
// (and, with synchronous=FULL, one fsync) instead of paying for one each.
// Every caller still waits until its write is committed, so nothing is
// reported before it is durable. The rare writes (failure, cancel,
// delete, interruption) go straight to the database.

type opKind int

const (
	opInsert opKind = iota
	opComplete
)

// writeOp is one write and where its outcome goes.
type writeOp struct {
	kind   opKind
	job    *Job      // opComplete
	jobs   []*Job    // opInsert: stored pending, or running here when so marked
	at     time.Time // finished_at
	result any       // opComplete: the handler's result
	done   chan writeResult
}

type writeResult struct {
	applied bool // the row changed (a completion can lose to a cancel)
	// started is how many of an insert's jobs were stored running: those
	// marked so, unless this node's heartbeat was too old.
	started    int
	artifactID *string // opComplete
	err        error
}

// maxBatch bounds one transaction, so a reader never waits long for the
// shared connection.
const maxBatch = 256

var errWriterStopped = errors.New("job: scheduler stopped")

// write hands op to the writer and waits for its commit. It returns
// errWriterStopped before Start and after Stop.
func (s *Scheduler) write(op *writeOp) writeResult {
	op.done = make(chan writeResult, 1)
	s.writeMu.RLock()
	if !s.writerOn {
		s.writeMu.RUnlock()
		return writeResult{err: errWriterStopped}
	}
	s.writes <- op
	s.writeMu.RUnlock()
	return <-op.done
}

// stopWriter refuses further writes, lets the writer apply what was
// already handed to it, and waits for it to end.
func (s *Scheduler) stopWriter() {
	s.writeMu.Lock()
	on := s.writerOn
	s.writerOn = false
	s.writeMu.Unlock()
	if on {
		close(s.writerStop)
		<-s.writerDone
	}
}

// runWriter batches writes until stop is closed, then applies what is
// still queued and returns.
func (s *Scheduler) runWriter(stop <-chan struct{}) {
	defer close(s.writerDone)
	batch := make([]*writeOp, 0, maxBatch)
	for {
		select {
		case op := <-s.writes:
			batch = append(batch[:0], op)
		case <-stop:
			for {
				batch = batch[:0]
				for len(batch) < maxBatch && len(s.writes) > 0 {
					batch = append(batch, <-s.writes)
				}
				if len(batch) == 0 {
					return
				}
				s.flush(batch)
			}
		}
		// Let the goroutines that are ready to run hand over their
		// writes too before the batch is closed: under concurrency they
		// usually are a moment away, and each one joining saves a
		// transaction of its own.
		runtime.Gosched()
	fill:
		for len(batch) < maxBatch {
			select {
			case op := <-s.writes:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		s.flush(batch)
	}
}

// flush applies a batch in one transaction and answers every op. It
// first tries the batch's fast form (one statement per table); when that
// fails it applies the batch again row by row, so that one bad row fails
// alone.
func (s *Scheduler) flush(batch []*writeOp) {
	if len(batch) == 1 && batch[0].kind == opInsert && s.d.notify == "" && len(batch[0].jobs) <= maxInsertRows && !startsHere(batch[0].jobs) {
		// Alone, an insert is one statement: its own transaction, without
		// a BEGIN/COMMIT around it.
		err := s.insertJobs(context.Background(), poolOf(s.db), batch[0].jobs)
		batch[0].done <- writeResult{applied: err == nil, err: err}
		return
	}
	results := make([]writeResult, len(batch))
	err := s.flushTx(batch, results, true)
	if err != nil {
		clear(results)
		err = s.flushTx(batch, results, false)
	}
	for i, op := range batch {
		r := results[i]
		if err != nil {
			r = writeResult{err: err}
		}
		op.done <- r
	}
}

// flushTx applies batch in one transaction, the completions batched or
// each in its own savepoint.
func (s *Scheduler) flushTx(batch []*writeOp, results []writeResult, batched bool) error {
	// Statements run to completion regardless of cancellation (see
	// internal/sqlitedb), so the batch uses a background context.
	ctx := context.Background()
	return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		inserted, err := s.flushInserts(ctx, tx, batch, results)
		if err != nil {
			return err
		}
		var done []string
		if batched {
			if done, err = s.flushCompletions(ctx, tx, batch, results); err != nil {
				return err
			}
		} else {
			for i, op := range batch {
				if op.kind == opComplete {
					results[i] = s.flushCompletion(tx, i, op)
					if results[i].applied {
						done = append(done, op.job.ID)
					}
				}
			}
		}
		// One notification per transaction: PostgreSQL serialises the
		// commits that notify, so each one costs every node's writers.
		// New pending work rides with the completed ids ("i" wakes the
		// other nodes and refreshes the ids' subscribers there).
		switch {
		case inserted:
			return s.notifyTx(tx, opInserted, strings.Join(done, ","))
		case len(done) > 0:
			return s.notifyTx(tx, opChanged, strings.Join(done, ","))
		}
		return nil
	})
}

// flushInserts stores the batch's new jobs with one statement and reports
// whether any of them waits for a claim. Jobs marked running on this node
// stay so only while its heartbeat is fresh, as a claim requires;
// otherwise they are stored pending.
func (s *Scheduler) flushInserts(ctx context.Context, tx *gorm.DB, batch []*writeOp, results []writeResult) (bool, error) {
	var jobs []*Job
	for _, op := range batch {
		if op.kind == opInsert {
			jobs = append(jobs, op.jobs...)
		}
	}
	if len(jobs) == 0 {
		return false, nil
	}
	fresh := true
	if startsHere(jobs) {
		var err error
		if fresh, err = s.fresh(ctx, poolOf(tx)); err != nil {
			return false, err
		}
	}
	pending := false
	for _, j := range jobs {
		if !fresh && j.Status == StatusRunning {
			j.Status, j.StartedAt, j.Node = StatusPending, nil, nil
		}
		pending = pending || j.Status == StatusPending
	}
	if err := s.insertJobs(ctx, poolOf(tx), jobs); err != nil {
		return false, err
	}
	for i, op := range batch {
		if op.kind == opInsert {
			started := 0
			for _, j := range op.jobs {
				if j.Status == StatusRunning {
					started++
				}
			}
			results[i] = writeResult{applied: true, started: started}
		}
	}
	return pending, nil
}

// startsHere reports whether any of jobs is to be stored running here.
func startsHere(jobs []*Job) bool {
	for _, j := range jobs {
		if j.Status == StatusRunning {
			return true
		}
	}
	return false
}

// flushCompletions stores the batch's completions: the results that are
// neither batchable nor a bare artifact id first, one call each, then one
// UPDATE for all the jobs, then, for those still running here, the results
// of each [Batcher] with one call. It returns the ids of the jobs
// completed.
func (s *Scheduler) flushCompletions(ctx context.Context, tx *gorm.DB, batch []*writeOp, results []writeResult) ([]string, error) {
	var rows []completion
	var idx []int
	var alone []int
	for i, op := range batch {
		if op.kind != opComplete {
			continue
		}
		var artifactID *string
		switch r := op.result.(type) {
		case BatchCommitter:
			// A batcher that cannot key a map (its documented duty)
			// has its result committed alone rather than panic the
			// writer.
			if b := r.Batcher(); b == nil || !reflect.TypeOf(b).Comparable() {
				alone = append(alone, i)
				continue
			}
			id := wire.NewID()
			artifactID = &id
		case Committer:
			alone = append(alone, i)
			continue
		default:
			artifactID = bareArtifactID(op.result)
		}
		rows, idx = append(rows, completion{id: op.job.ID, attempt: op.job.Attempt, at: op.at, artifact: artifactID}), append(idx, i)
	}
	// The results to be stored alone write first, each without a
	// savepoint of its own (a savepoint is a round trip and, on
	// PostgreSQL, a subtransaction), and their jobs join the one UPDATE.
	// Should one of them fail, or its job have been cancelled meanwhile,
	// the whole batch is rolled back and applied again one job at a time,
	// each in a savepoint, as flush does on any error.
	batched := len(rows)
	for _, i := range alone {
		op := batch[i]
		id, err := op.result.(Committer).CommitJob(tx)
		if err != nil {
			return nil, err
		}
		var artifactID *string
		if id != "" {
			artifactID = &id
		}
		rows, idx = append(rows, completion{id: op.job.ID, attempt: op.job.Attempt, at: op.at, artifact: artifactID}), append(idx, i)
	}
	var done []string
	if len(rows) > 0 {
		changed, err := s.completeJobs(ctx, poolOf(tx), rows)
		if err != nil {
			return nil, err
		}
		for _, r := range rows[batched:] {
			if !changed[r.id] {
				return nil, errCommittedAlone
			}
		}
		groups := map[Batcher][]int{}
		var order []Batcher
		for k, i := range idx {
			if !changed[rows[k].id] {
				continue // cancelled, deleted or rescued meanwhile: nothing stored
			}
			results[i] = writeResult{applied: true, artifactID: rows[k].artifact}
			done = append(done, rows[k].id)
			if bc, ok := batch[i].result.(BatchCommitter); ok && k < batched {
				b := bc.Batcher()
				if groups[b] == nil {
					order = append(order, b)
				}
				groups[b] = append(groups[b], i)
			}
		}
		for _, b := range order {
			members := groups[b]
			rs := make([]BatchCommitter, len(members))
			ids := make([]string, len(members))
			for k, i := range members {
				rs[k], ids[k] = batch[i].result.(BatchCommitter), *results[i].artifactID
			}
			if err := b.CommitJobs(tx, rs, ids); err != nil {
				return nil, err
			}
		}
	}
	return done, nil
}

// errCommittedAlone rolls back a batch in which a result was written for a
// job that is no longer running here, so that flush applies the batch
// again with a savepoint per job.
var errCommittedAlone = errors.New("job: a completion written with its batch lost its job")

// bareArtifactID returns the artifact id a handler returned as a ULID (or
// its string form), nil for any other result.
func bareArtifactID(result any) *string {
	switch r := result.(type) {
	case ulid.ULID:
		id := r.String()
		return &id
	case string:
		if wire.ValidID(r) {
			return &r
		}
	}
	return nil
}

// flushCompletion stores one result and the job's completion inside a
// savepoint: either both are kept or, when the job is no longer running or
// the result cannot be stored, neither.
func (s *Scheduler) flushCompletion(tx *gorm.DB, i int, op *writeOp) writeResult {
	sp := fmt.Sprintf("c%d", i)
	if err := tx.SavePoint(sp).Error; err != nil {
		return writeResult{err: err}
	}
	var artifactID *string
	var err error
	if r, ok := op.result.(Committer); ok {
		var id string
		if id, err = r.CommitJob(tx); err == nil && id != "" {
			artifactID = &id
		}
	} else {
		artifactID = bareArtifactID(op.result)
	}
	if err == nil {
		res := tx.Model(&Job{}).Where("id = ? AND status = ? AND node = ? AND attempt = ?", op.job.ID, StatusRunning, s.node.ID, op.job.Attempt).
			Updates(map[string]any{"status": StatusCompleted, "finished_at": op.at, "artifact_id": artifactID})
		if err = res.Error; err == nil && res.RowsAffected == 1 {
			return writeResult{applied: true, artifactID: artifactID}
		}
	}
	if rbErr := tx.RollbackTo(sp).Error; rbErr != nil {
		return writeResult{err: rbErr}
	}
	return writeResult{err: err} // err nil: the job was cancelled or deleted meanwhile
}
