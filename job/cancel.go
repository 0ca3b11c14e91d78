package job

import (
	"context"
	"time"

	"gorm.io/gorm"

	"github.com/chapkit-go/chapkit/internal/wire"
	"github.com/chapkit-go/chapkit/problem"
)

// cancelGrace bounds how long Cancel, Delete and Stop wait for a cancelled
// job's goroutine to return. Shell jobs return at once (what they started
// is killed); a function that ignores its context keeps running, but its
// job is already recorded and nothing it returns is stored.
const cancelGrace = time.Second

// Cancel cancels a pending or running job and keeps it with status
// canceled. A job running on this node has its context cancelled with
// ErrCanceled; one running on another node is told through a notification
// (PostgreSQL) or that node's next poll (SQLite). It returns the stored
// record, ErrNotFound, or a *FinishedError.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*Job, error) {
	return s.stop(ctx, id, ErrCanceled)
}

// Delete cancels the job if it is unfinished and removes its record. It
// returns ErrNotFound for an unknown id.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	_, err := s.stop(ctx, id, ErrDeleted)
	return err
}

func (s *Scheduler) stop(ctx context.Context, id string, cause error) (*Job, error) {
	if !wire.ValidID(id) {
		return nil, ErrNotFound
	}
	var out *Job
	var err error
	if cause == ErrDeleted {
		err = s.remove(ctx, id)
	} else {
		out, err = s.markCanceled(ctx, id)
	}
	if err != nil {
		return nil, err
	}
	if e := s.cancelLocal(id, cause); e != nil {
		s.awaitStop(ctx, e)
	}
	return out, nil
}

// cancelLocal cancels job id if it runs on this node, and watches that it
// returns. It returns the job's entry, or nil when it does not run here.
func (s *Scheduler) cancelLocal(id string, cause error) *runEntry {
	s.mu.Lock()
	e := s.running[id]
	s.mu.Unlock()
	if e == nil {
		return nil
	}
	e.cancel(cause)
	s.watchCancelled(e)
	return e
}

func (s *Scheduler) awaitStop(ctx context.Context, e *runEntry) {
	t := time.NewTimer(cancelGrace)
	defer t.Stop()
	select {
	case <-e.done:
	case <-ctx.Done():
	case <-t.C:
		s.log.WarnContext(e.ctx, "cancelled job has not returned yet", "job_id", e.job.ID, "kind", e.job.Kind)
	}
}

func (s *Scheduler) markCanceled(ctx context.Context, id string) (*Job, error) {
	now := wire.Now()
	var j Job
	err := s.tx(ctx, func(tx *gorm.DB) error {
		if err := tx.Where("id = ?", id).Limit(1).Find(&j).Error; err != nil {
			return err
		}
		if j.ID == "" || j.Status.Terminal() {
			return nil
		}
		// Compare and set: a node finishing the job at the same moment
		// wins or loses as a whole.
		res := tx.Model(&Job{}).Where("id = ? AND status = ?", id, j.Status).Updates(map[string]any{"status": StatusCanceled, "finished_at": now})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			j.ID = "" // changed under us: read again below
			return nil
		}
		return s.notifyTx(tx, opCanceled, id)
	})
	if err != nil {
		return nil, problem.Database("job.Scheduler.Cancel", err)
	}
	if j.ID == "" {
		// Not found, or it changed between the read and the update (only
		// possible on PostgreSQL): report what it is now.
		cur, gerr := s.Get(ctx, id)
		if gerr != nil {
			return nil, gerr
		}
		if cur.Status.Terminal() {
			return nil, &FinishedError{ID: id, Status: cur.Status}
		}
		return s.markCanceled(ctx, id)
	}
	if j.Status.Terminal() {
		return nil, &FinishedError{ID: id, Status: j.Status}
	}
	from := j.Status
	j.Status, j.FinishedAt = StatusCanceled, &now
	s.changed(j.clone(), from)
	s.log.Info("job canceled", "job_id", id, "kind", j.Kind)
	return &j, nil
}

func (s *Scheduler) remove(ctx context.Context, id string) error {
	var found bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		res := tx.Where("id = ?", id).Delete(&Job{})
		found = res.RowsAffected > 0
		if res.Error != nil || !found {
			return res.Error
		}
		return s.notifyTx(tx, opDeleted, id)
	})
	if err != nil {
		return problem.Database("job.Scheduler.Delete", err)
	}
	if !found {
		return ErrNotFound
	}
	s.publish(id, Event{Deleted: true})
	return nil
}

// Wait blocks until the job is terminal and returns it; ErrNotFound when
// it does not exist or is deleted meanwhile; ctx's error when ctx ends
// first (the job keeps running).
func (s *Scheduler) Wait(ctx context.Context, id string) (*Job, error) {
	events, unsubscribe := s.Subscribe(id)
	defer unsubscribe()
	// A job running on this node whose end was not published yet needs no
	// read: its end reaches the subscription made above. Not so once its
	// context was cancelled: a cancel, deletion or rescue made by another
	// node is in the database already, and the call may take long to
	// return.
	s.mu.Lock()
	e := s.running[id]
	here := e != nil && !e.ended && e.ctx.Err() == nil
	s.mu.Unlock()
	var j *Job
	if !here {
		var err error
		if j, err = s.Get(ctx, id); err != nil {
			return nil, err
		}
	}
	for j == nil || !j.Status.Terminal() {
		select {
		case ev := <-events:
			if ev.Deleted {
				return nil, ErrNotFound
			}
			j = ev.Job
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return j, nil
}

// Stop drains this node: Submit answers ErrDraining, it claims no more
// jobs (pending ones stay in the database for any node), and running jobs
// get until the drain deadline (Config.DrainTimeout, or ctx's deadline when
// sooner). Jobs still running then are cancelled with ErrShutdown, what
// they started is killed, and they are recorded as interrupted (or pending
// again under Config.RetryInterrupted). The node then gives up leadership
// and removes its row. Stop is idempotent; before Start it only closes the
// scheduler (Submit answers ErrDraining, Start fails), leaving the jobs
// submitted so far pending. It returns ctx's error when ctx ended before
// the drain did.
func (s *Scheduler) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.st == stateNew {
		s.st = stateStopped
	}
	if s.st != stateStarted {
		s.mu.Unlock()
		return nil
	}
	s.st = stateDraining
	s.mu.Unlock()

	idle := make(chan struct{})
	go func() { s.wg.Wait(); close(idle) }()
	deadline := time.NewTimer(s.cfg.DrainTimeout)
	defer deadline.Stop()
	var err error
	select {
	case <-idle:
	case <-deadline.C:
	case <-ctx.Done():
		err = ctx.Err()
	}

	s.mu.Lock()
	left := make([]*runEntry, 0, len(s.running))
	for _, e := range s.running {
		e.cancel(ErrShutdown)
		left = append(left, e)
	}
	s.mu.Unlock()
	// Wait (bounded) for the cancelled calls before recording them: a job
	// may go back to pending for another attempt only once its call has
	// returned, or another node could run the next attempt beside it. A
	// call still running is recorded as failed instead. The fresh context
	// is because ctx may be over.
	recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, e := range left {
		s.awaitStop(recordCtx, e)
	}
	for _, e := range left {
		returned := false
		select {
		case <-e.done:
			returned = true
		default:
		}
		if _, ierr := s.interrupt(recordCtx, e.job, s.node.ID, returned); ierr != nil {
			s.log.Error("record interrupted job", "job_id", e.job.ID, "error", ierr)
		}
	}
	if len(left) > 0 {
		s.log.Warn("drain deadline passed; running jobs interrupted", "count", len(left))
	}

	s.mu.Lock()
	s.loopsOn = false
	s.mu.Unlock()
	s.loopCancel()
	s.loops.Wait()
	s.watchers.Wait()
	s.deregister()
	s.mu.Lock()
	s.st = stateStopped
	s.runCancel(ErrShutdown)
	s.mu.Unlock()
	s.stopWriter()
	return err
}

// interrupt records a running job whose node stopped under it (node is
// the id recorded in the row; "" for rows of the single-node schema that
// recorded none): failed with InterruptedError, or back to pending when
// allowRetry and the retry policy allow another attempt. It returns the
// stored record, or nil when the job was no longer running there.
func (s *Scheduler) interrupt(ctx context.Context, j *Job, node string, allowRetry bool) (*Job, error) {
	now := wire.Now()
	updated := j.clone()
	var values map[string]any
	retry := allowRetry && s.RetriesEnabled() && j.Attempt < s.cfg.RetryInterrupted
	if retry {
		updated.Status, updated.StartedAt, updated.PGID, updated.Node = StatusPending, nil, nil, nil
		updated.Attempt = j.Attempt + 1
		values = map[string]any{"status": StatusPending, "started_at": nil, "pgid": nil, "node": nil, "attempt": updated.Attempt}
	} else {
		msg := InterruptedError
		updated.Status, updated.FinishedAt, updated.Error, updated.ErrorTraceback = StatusFailed, &now, &msg, &msg
		values = map[string]any{"status": StatusFailed, "finished_at": now, "error": msg, "error_traceback": msg}
	}
	var applied bool
	err := s.tx(ctx, func(tx *gorm.DB) error {
		q := tx.Model(&Job{}).Where("id = ? AND status = ? AND attempt = ?", j.ID, StatusRunning, j.Attempt)
		if node == "" {
			q = q.Where("node IS NULL")
		} else {
			q = q.Where("node = ?", node)
		}
		res := q.Updates(values)
		applied = res.RowsAffected == 1
		if res.Error != nil || !applied {
			return res.Error
		}
		if retry {
			return s.notifyTx(tx, opInserted, j.ID) // pending again: wake the nodes
		}
		return s.notifyTx(tx, opChanged, j.ID)
	})
	if err != nil || !applied {
		return nil, err
	}
	if retry {
		s.mu.Lock()
		s.pendingEst++
		s.mu.Unlock()
		s.poke()
	}
	s.changed(updated, StatusRunning)
	return updated, nil
}
