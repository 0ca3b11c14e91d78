package job

import (
	"context"
	"errors"
	"fmt"
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
	opStart
	opComplete
)

// writeOp is one write and where its outcome goes.
type writeOp struct {
	kind   opKind
	job    *Job
	at     time.Time // started_at or finished_at
	result any       // opComplete: the handler's result
	done   chan writeResult
}

type writeResult struct {
	applied    bool    // the row changed (a start or completion can lose to a cancel)
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

// flush applies a batch in one transaction and answers every op.
func (s *Scheduler) flush(batch []*writeOp) {
	if len(batch) == 1 && batch[0].kind != opComplete {
		// Alone, an insert or a start is one statement: its own
		// transaction, without a BEGIN/COMMIT around it.
		s.flushAlone(batch[0])
		return
	}
	results := make([]writeResult, len(batch))
	// Statements run to completion regardless of cancellation (see
	// internal/sqlitedb), so the batch uses a background context.
	err := s.db.WithContext(context.Background()).Transaction(func(tx *gorm.DB) error {
		s.flushInserts(tx, batch, results)
		if err := s.flushStarts(tx, batch, results); err != nil {
			return err
		}
		for i, op := range batch {
			if op.kind == opComplete {
				results[i] = s.flushCompletion(tx, i, op)
			}
		}
		return nil
	})
	for i, op := range batch {
		r := results[i]
		if err != nil {
			r = writeResult{err: err}
		}
		op.done <- r
	}
}

func (s *Scheduler) flushAlone(op *writeOp) {
	db := s.db.WithContext(context.Background())
	var r writeResult
	switch op.kind {
	case opInsert:
		r.err = db.Create(op.job).Error
		r.applied = r.err == nil
	case opStart:
		res := db.Model(&Job{}).Where("id = ? AND status = ?", op.job.ID, StatusPending).
			Updates(map[string]any{"status": StatusRunning, "started_at": op.at})
		r.err, r.applied = res.Error, res.Error == nil && res.RowsAffected == 1
	}
	op.done <- r
}

func (s *Scheduler) flushInserts(tx *gorm.DB, batch []*writeOp, results []writeResult) {
	var jobs []*Job
	var idx []int
	for i, op := range batch {
		if op.kind == opInsert {
			jobs, idx = append(jobs, op.job), append(idx, i)
		}
	}
	if len(jobs) == 0 {
		return
	}
	err := tx.Create(&jobs).Error
	for _, i := range idx {
		results[i] = writeResult{applied: err == nil, err: err}
	}
}

// flushStarts marks the batch's jobs running with one statement; a job
// that is no longer pending (cancelled or deleted meanwhile) is not.
func (s *Scheduler) flushStarts(tx *gorm.DB, batch []*writeOp, results []writeResult) error {
	var ids []string
	var at time.Time
	for _, op := range batch {
		if op.kind == opStart {
			ids = append(ids, op.job.ID)
			at = op.at
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var started []string
	err := tx.Raw("UPDATE jobs SET status = ?, started_at = ? WHERE status = ? AND id IN ? RETURNING id",
		StatusRunning, at, StatusPending, ids).Scan(&started).Error
	if err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	ok := make(map[string]bool, len(started))
	for _, id := range started {
		ok[id] = true
	}
	for i, op := range batch {
		if op.kind == opStart {
			op.at = at
			results[i] = writeResult{applied: ok[op.job.ID]}
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
	switch r := op.result.(type) {
	case Committer:
		var id string
		if id, err = r.CommitJob(tx); err == nil && id != "" {
			artifactID = &id
		}
	case ulid.ULID:
		id := r.String()
		artifactID = &id
	case string:
		if wire.ValidID(r) {
			artifactID = &r
		}
	}
	if err == nil {
		res := tx.Model(&Job{}).Where("id = ? AND status = ?", op.job.ID, StatusRunning).
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
