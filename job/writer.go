package job

import (
	"context"
	"errors"
	"fmt"
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
	job    *Job
	at     time.Time // finished_at
	result any       // opComplete: the handler's result
	done   chan writeResult
}

type writeResult struct {
	applied    bool    // the row changed (a completion can lose to a cancel)
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
	if len(batch) == 1 && batch[0].kind == opInsert && s.d.notify == "" {
		// Alone, an insert is one statement: its own transaction, without
		// a BEGIN/COMMIT around it.
		err := s.db.WithContext(context.Background()).Create(batch[0].job).Error
		batch[0].done <- writeResult{applied: err == nil, err: err}
		return
	}
	results := make([]writeResult, len(batch))
	// Statements run to completion regardless of cancellation (see
	// internal/sqlitedb), so the batch uses a background context.
	err := s.db.WithContext(context.Background()).Transaction(func(tx *gorm.DB) error {
		inserted := s.flushInserts(tx, batch, results)
		var done []string
		for i, op := range batch {
			if op.kind == opComplete {
				results[i] = s.flushCompletion(tx, i, op)
				if results[i].applied {
					done = append(done, op.job.ID)
				}
			}
		}
		if inserted {
			if err := s.notifyTx(tx, opInserted, ""); err != nil {
				return err
			}
		}
		if len(done) > 0 {
			return s.notifyTx(tx, opChanged, strings.Join(done, ","))
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

// flushInserts stores the batch's new jobs with one statement and reports
// whether there were any.
func (s *Scheduler) flushInserts(tx *gorm.DB, batch []*writeOp, results []writeResult) bool {
	var jobs []*Job
	var idx []int
	for i, op := range batch {
		if op.kind == opInsert {
			jobs, idx = append(jobs, op.job), append(idx, i)
		}
	}
	if len(jobs) == 0 {
		return false
	}
	err := tx.Create(&jobs).Error
	for _, i := range idx {
		results[i] = writeResult{applied: err == nil, err: err}
	}
	return err == nil
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
