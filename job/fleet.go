package job

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"gorm.io/gorm"
)

// The scheduler's side of running several nodes on one database: the node
// row and its heartbeat, the leader lease, the rescue of dead nodes, the
// notifications nodes send each other and the fallback poll.

// notifyChannel is the PostgreSQL channel nodes signal each other on.
// A payload is "<op> <origin node> <job ids, comma-separated>".
const notifyChannel = "chapkit_jobs"

const (
	opInserted = "i" // new pending work: wake up and claim; the ids changed too
	opChanged  = "c" // the jobs changed: tell their subscribers
	opCanceled = "x" // the jobs were cancelled: stop them where they run
	opDeleted  = "d" // the jobs were deleted: stop them, tell subscribers
)

// tx runs fn in a transaction on PostgreSQL, where notifications are sent
// at commit, and directly on SQLite, whose statements are atomic on their
// own and which has no notifications.
func (s *Scheduler) tx(ctx context.Context, fn func(tx *gorm.DB) error) error {
	db := s.db.WithContext(ctx)
	if s.d.notify == "" {
		return fn(db)
	}
	return db.Transaction(fn)
}

// notifyTx sends a notification inside tx (PostgreSQL only).
func (s *Scheduler) notifyTx(tx *gorm.DB, op string, ids string) error {
	if s.d.notify == "" {
		return nil
	}
	return tx.Exec(s.d.notify, notifyChannel, op+" "+s.node.ID+" "+ids).Error
}

// notify sends a notification on its own (PostgreSQL only).
func (s *Scheduler) notify(ctx context.Context, op string, ids ...string) {
	if s.d.notify == "" {
		return
	}
	if err := s.notifyTx(s.db.WithContext(ctx), op, strings.Join(ids, ",")); err != nil {
		s.log.Warn("notify nodes", "op", op, "error", err)
	}
}

// onNotification acts on a payload another node sent.
func (s *Scheduler) onNotification(payload string) {
	op, rest, _ := strings.Cut(payload, " ")
	origin, list, _ := strings.Cut(rest, " ")
	if origin == s.node.ID {
		return // this node acted on it already
	}
	var ids []string
	if list != "" {
		ids = strings.Split(list, ",")
	}
	ctx := s.loopCtx
	switch op {
	case opInserted:
		s.poke()
		s.refreshInserted(ctx)
		s.refresh(ctx, ids) // jobs completed in the same transaction
	case opCanceled, opDeleted:
		cause := ErrCanceled
		if op == opDeleted {
			cause = ErrDeleted
		}
		for _, id := range ids {
			s.cancelLocal(id, cause)
		}
		s.refresh(ctx, ids)
	case opChanged:
		s.refresh(ctx, ids)
	}
}

// refresh reads the jobs among ids that have subscribers here and sends
// them their current state (or their deletion).
func (s *Scheduler) refresh(ctx context.Context, ids []string) {
	var want []string
	for _, id := range ids {
		if s.hasSubscribers(id) {
			want = append(want, id)
		}
	}
	if len(want) == 0 {
		return
	}
	var jobs []Job
	if err := s.db.WithContext(ctx).Where("id IN ?", want).Find(&jobs).Error; err != nil {
		s.log.Warn("read jobs changed by other nodes", "error", err)
		return
	}
	found := make(map[string]bool, len(jobs))
	for i := range jobs {
		found[jobs[i].ID] = true
		s.publish(jobs[i].ID, Event{Job: &jobs[i]})
	}
	for _, id := range want {
		if !found[id] {
			s.publish(id, Event{Deleted: true})
		}
	}
}

// poll covers what no notification said: jobs running here that were
// cancelled, deleted or rescued elsewhere, and changes of jobs that
// subscribers here follow. It runs every Config.PollInterval.
func (s *Scheduler) poll(ctx context.Context) {
	s.mu.Lock()
	mine := make([]string, 0, len(s.running))
	var stopped []string
	for id := range s.running {
		mine = append(mine, id)
	}
	s.mu.Unlock()
	if len(mine) > 0 {
		var rows []Job
		if err := s.db.WithContext(ctx).Select("id", "status", "node").Where("id IN ?", mine).Find(&rows).Error; err != nil {
			s.log.Warn("check running jobs", "error", err)
		} else {
			byID := make(map[string]*Job, len(rows))
			for i := range rows {
				byID[rows[i].ID] = &rows[i]
			}
			for _, id := range mine {
				r := byID[id]
				switch {
				case r == nil:
					s.cancelLocal(id, ErrDeleted)
				case r.Status == StatusCanceled:
					s.cancelLocal(id, ErrCanceled)
				case r.Status != StatusRunning || r.Node == nil || *r.Node != s.node.ID:
					s.cancelLocal(id, ErrRescued) // finished or taken over elsewhere
				default:
					continue
				}
				stopped = append(stopped, id)
			}
		}
	}
	// The jobs just stopped here for a change made elsewhere are read
	// too: their calls may take long to return, and until then nothing
	// on this node tells their subscribers of that change.
	s.refresh(ctx, append(s.subscribedElsewhere(), stopped...))
	// A job another node stored running at once sends no notification
	// (that NOTIFY would cost every submission); service-wide
	// subscribers here learn of it by this read, within one interval.
	s.refreshInserted(ctx)
}

// register writes this node's row with its first heartbeat. A row left
// under the same id (a configured Config.NodeID) by a process that is gone,
// or whose heartbeat is past its horizon, is rescued and taken over; one
// held by a live process is an error.
func (s *Scheduler) register(ctx context.Context) error {
	sent := time.Since(s.born)
	insert := func() error {
		return s.db.WithContext(ctx).Exec(
			"INSERT INTO chapkit_nodes (id, hostname, pid, host_key, proc_start, started_ms, heartbeat_ms, rescue_after_ms) VALUES (?, ?, ?, ?, ?, "+s.d.nowMS+", "+s.d.nowMS+", ?)",
			s.node.ID, s.node.Hostname, s.node.PID, s.node.HostKey, s.node.ProcStart, s.node.RescueAfterMS).Error
	}
	err := insert()
	if err != nil {
		var old Node
		if ferr := s.db.WithContext(ctx).Where("id = ?", s.node.ID).Limit(1).Find(&old).Error; ferr != nil || old.ID == "" {
			return err
		}
		stale := false
		if !processGone(&old, s.node.HostKey) {
			var n int64
			if err := s.db.WithContext(ctx).Model(&Node{}).Where("id = ? AND heartbeat_ms < "+s.d.nowMS+" - rescue_after_ms", old.ID).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return fmt.Errorf("node id %s is in use by a live process (%s pid %d)", old.ID, old.Hostname, old.PID)
			}
			stale = true
		}
		if _, err := s.rescueNode(ctx, &old, stale); err != nil {
			return err
		}
		if err := insert(); err != nil {
			return err
		}
	}
	s.beatSent.Store(int64(sent))
	return nil
}

// deregister gives up the lease and removes the node's row: a clean stop
// leaves nothing for others to rescue. It uses its own short deadline, so
// it runs even when the drain used up the caller's.
func (s *Scheduler) deregister() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	db := s.db.WithContext(ctx)
	if err := db.Exec("UPDATE chapkit_leases SET holder = '', expires_ms = 0 WHERE name = ? AND holder = ?", leaderLease, s.node.ID).Error; err != nil {
		s.log.Warn("release leader lease", "error", err)
	}
	if err := db.Exec("DELETE FROM chapkit_nodes WHERE id = ?", s.node.ID).Error; err != nil {
		s.log.Warn("remove node", "error", err)
	}
	s.leader.Store(false)
}

// recover runs at Start: it rescues at once the jobs of earlier processes
// of this kernel and pid namespace that are provably gone, and jobs of the
// single-node schema (running with no node); with the lease it also
// rescues dead nodes everywhere.
func (s *Scheduler) recover(ctx context.Context) (int, error) {
	rescued := 0
	if s.node.HostKey != "" {
		var local []Node
		if err := s.db.WithContext(ctx).Where("host_key = ? AND id <> ?", s.node.HostKey, s.node.ID).Find(&local).Error; err != nil {
			return 0, err
		}
		for i := range local {
			if !processGone(&local[i], s.node.HostKey) {
				continue
			}
			n, err := s.rescueNode(ctx, &local[i], false)
			if err != nil {
				return rescued, err
			}
			rescued += n
		}
	}
	n, err := s.rescueOrphans(ctx)
	rescued += n
	if err != nil {
		return rescued, err
	}
	if s.renewLease(ctx) {
		n, err := s.rescueDead(ctx)
		rescued += n
		if err != nil {
			return rescued, err
		}
	}
	return rescued, nil
}

func (s *Scheduler) beatInterval() time.Duration {
	return max(s.cfg.RescueAfter/5, 10*time.Millisecond)
}

// heartbeatLoop writes the heartbeat every fifth of the rescue horizon,
// each write bounded by that interval, and nothing else, so that slow
// maintenance can never delay it.
func (s *Scheduler) heartbeatLoop() {
	defer s.loops.Done()
	tick := time.NewTicker(s.beatInterval())
	defer tick.Stop()
	for {
		select {
		case <-s.loopCtx.Done():
			return
		case <-tick.C:
		}
		s.beat(s.loopCtx)
	}
}

// watchdogLoop fences the node when no heartbeat has been written for
// three quarters of the horizon, whatever the heartbeat goroutine is
// stuck in. It measures on the monotonic clock, from when the last
// written heartbeat was sent.
func (s *Scheduler) watchdogLoop() {
	defer s.loops.Done()
	tick := time.NewTicker(max(s.beatInterval()/2, 5*time.Millisecond))
	defer tick.Stop()
	limit := s.cfg.RescueAfter * 3 / 4
	for {
		select {
		case <-s.loopCtx.Done():
			return
		case <-tick.C:
		}
		if age := time.Since(s.born) - time.Duration(s.beatSent.Load()); age > limit {
			s.fence(fmt.Sprintf("no heartbeat written for %s", age.Round(time.Millisecond)))
		}
	}
}

// maintenanceLoop counts pending jobs, holds or seeks the leader lease
// and, as leader, rescues dead nodes, every fifth of the horizon.
func (s *Scheduler) maintenanceLoop() {
	defer s.loops.Done()
	tick := time.NewTicker(s.beatInterval())
	defer tick.Stop()
	for {
		select {
		case <-s.loopCtx.Done():
			return
		case <-tick.C:
		}
		ctx := s.loopCtx
		if n, err := s.countPending(ctx); err == nil {
			s.mu.Lock()
			s.pendingEst = n
			s.mu.Unlock()
		}
		if s.renewLease(ctx) {
			if _, err := s.rescueDead(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("rescue dead nodes", "error", err)
			}
		}
	}
}

func (s *Scheduler) beat(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, s.beatInterval())
	defer cancel()
	sent := time.Since(s.born)
	res := s.db.WithContext(ctx).Exec("UPDATE chapkit_nodes SET heartbeat_ms = "+s.d.nowMS+" WHERE id = ?", s.node.ID)
	switch {
	case res.Error != nil:
		if parent.Err() == nil {
			s.log.Warn("write heartbeat", "error", res.Error)
		}
		return // the watchdog fences once the last heartbeat is too old
	case res.RowsAffected == 0:
		// Another node declared this one dead and rescues its jobs: stop
		// them here, then join again.
		s.fence("this node was declared dead by another")
		if err := s.register(ctx); err != nil {
			s.log.Warn("register node again", "error", err)
			return
		}
	default:
		s.beatSent.Store(int64(sent))
	}
	s.unfence(ctx)
}

// fence stops every job running on this node without recording anything
// and stops claiming: the node can no longer prove it is alive, so another
// node will rescue its jobs, and they must not run twice.
func (s *Scheduler) fence(reason string) {
	s.mu.Lock()
	already := s.fenced
	s.fenced = true
	entries := make([]*runEntry, 0, len(s.running))
	for _, e := range s.running {
		e.fenced = true
		entries = append(entries, e)
	}
	s.mu.Unlock()
	s.leader.Store(false)
	if already {
		return
	}
	s.log.Error("node fenced: running jobs stopped", "node", s.node.ID, "reason", reason, "jobs", len(entries))
	for _, e := range entries {
		s.cancelLocal(e.job.ID, ErrRescued)
	}
}

// unfence resumes after a fence once a heartbeat is written again. While
// still fenced (so no claim can interleave), it records as interrupted the
// jobs still marked running on this node that it no longer runs or that
// the fence stopped; then it claims again.
func (s *Scheduler) unfence(ctx context.Context) {
	s.mu.Lock()
	was := s.fenced
	s.mu.Unlock()
	if !was {
		return
	}
	var rows []Job
	if err := s.db.WithContext(ctx).Where("status = ? AND node = ?", StatusRunning, s.node.ID).Find(&rows).Error; err != nil {
		s.log.Warn("find jobs left by the fence", "error", err)
		return
	}
	for i := range rows {
		s.mu.Lock()
		e := s.running[rows[i].ID]
		live := e != nil && !e.fenced
		s.mu.Unlock()
		if !live {
			// Another attempt only once the stopped call has returned.
			returned := e == nil
			if e != nil {
				select {
				case <-e.done:
					returned = true
				default:
				}
			}
			if _, err := s.interrupt(ctx, &rows[i], s.node.ID, returned); err != nil {
				s.log.Warn("record fenced job", "job_id", rows[i].ID, "error", err)
				return
			}
		}
	}
	s.mu.Lock()
	s.fenced = false
	s.mu.Unlock()
	s.log.Info("node heartbeat restored; claiming jobs again", "node", s.node.ID)
	s.poke()
}

// renewLease takes or keeps the leader lease and reports whether this node
// holds it. The lease lasts half the rescue horizon and is renewed every
// fifth of it, so a dead leader's lease passes on within the horizon.
func (s *Scheduler) renewLease(ctx context.Context) bool {
	s.mu.Lock()
	fenced := s.fenced
	s.mu.Unlock()
	if fenced {
		s.leader.Store(false)
		return false
	}
	ttl := max(s.cfg.RescueAfter/2, 20*time.Millisecond).Milliseconds()
	res := s.db.WithContext(ctx).Exec(
		"UPDATE chapkit_leases SET holder = ?, expires_ms = "+s.d.nowMS+" + ? WHERE name = ? AND (holder = ? OR expires_ms < "+s.d.nowMS+")",
		s.node.ID, ttl, leaderLease, s.node.ID)
	now := res.Error == nil && res.RowsAffected == 1
	if res.Error != nil && ctx.Err() == nil {
		s.log.Warn("renew leader lease", "error", res.Error)
	}
	if was := s.leader.Swap(now); was != now {
		s.log.Info("leadership changed", "node", s.node.ID, "leader", now)
	}
	return now
}

// rescueDead rescues the jobs of every node whose heartbeat is older than
// that node's own rescue horizon, and of running jobs whose node row is
// gone.
func (s *Scheduler) rescueDead(ctx context.Context) (int, error) {
	var dead []Node
	err := s.db.WithContext(ctx).Where("heartbeat_ms < "+s.d.nowMS+" - rescue_after_ms AND id <> ?", s.node.ID).Find(&dead).Error
	if err != nil {
		return 0, err
	}
	total := 0
	for i := range dead {
		n, err := s.rescueNode(ctx, &dead[i], true)
		total += n
		if err != nil {
			return total, err
		}
	}
	n, err := s.rescueOrphans(ctx)
	return total + n, err
}

// rescueNode rescues a dead node: it kills, where the node ran in this
// kernel and pid namespace, what its jobs started (running ones, and any
// cancelled or deleted while it was dead), interrupts its running jobs,
// then removes its row. stale asks every step to check that the heartbeat
// is still past the node's horizon, so a node that came back meanwhile is
// left alone.
func (s *Scheduler) rescueNode(ctx context.Context, dead *Node, stale bool) (int, error) {
	if stale {
		var n int64
		if err := s.db.WithContext(ctx).Model(&Node{}).Where("id = ? AND heartbeat_ms < "+s.d.nowMS+" - rescue_after_ms", dead.ID).Count(&n).Error; err != nil || n == 0 {
			return 0, err
		}
	}
	var jobs []Job
	sameHost := s.node.HostKey != "" && dead.HostKey == s.node.HostKey
	if sameHost {
		// Shell jobs record their process group only once they have run
		// for a moment (task.processGroupDelay): a running job without
		// one is handed to the configured killer too, which finds what
		// the job started by its id alone. The default killer needs a
		// group.
		q := s.db.WithContext(ctx).Where("node = ? AND status IN ?", dead.ID, []Status{StatusRunning, StatusCanceled})
		if s.cfg.KillLeftovers != nil {
			q = q.Where("pgid IS NOT NULL OR status = ?", StatusRunning)
		} else {
			q = q.Where("pgid IS NOT NULL")
		}
		if err := q.Find(&jobs).Error; err != nil {
			return 0, err
		}
		for i := range jobs {
			pgid := 0
			if jobs[i].PGID != nil {
				pgid = *jobs[i].PGID
			}
			s.killLeftovers(jobs[i].ID, pgid)
		}
	}
	jobs = jobs[:0]
	if err := s.db.WithContext(ctx).Where("status = ? AND node = ?", StatusRunning, dead.ID).Find(&jobs).Error; err != nil {
		return 0, err
	}
	s.log.Warn("rescuing jobs of a dead node", "dead_node", describeNode(dead), "jobs", len(jobs))
	n, err := s.rescueJobs(ctx, jobs, dead.ID, false)
	if err != nil {
		return n, err
	}
	q := s.db.WithContext(ctx).Where("id = ?", dead.ID)
	if stale {
		q = q.Where("heartbeat_ms < " + s.d.nowMS + " - rescue_after_ms")
	}
	return n, q.Delete(&Node{}).Error
}

// rescueOrphans rescues running jobs whose node is unknown: rows written
// by the single-node schema (no node), or by a node whose row was removed.
func (s *Scheduler) rescueOrphans(ctx context.Context) (int, error) {
	var jobs []Job
	err := s.db.WithContext(ctx).Where("status = ? AND (node IS NULL OR node NOT IN (SELECT id FROM chapkit_nodes))", StatusRunning).Find(&jobs).Error
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	total := 0
	for i := range jobs {
		node := ""
		if jobs[i].Node != nil {
			node = *jobs[i].Node
		}
		// Jobs of the single-node schema were started by a process of
		// this host (one process owned the database then).
		n, err := s.rescueJobs(ctx, jobs[i:i+1], node, node == "")
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Scheduler) rescueJobs(ctx context.Context, jobs []Job, node string, kill bool) (int, error) {
	n := 0
	for i := range jobs {
		j := &jobs[i]
		if kill && j.PGID != nil && *j.PGID > 1 {
			s.killLeftovers(j.ID, *j.PGID)
		}
		updated, err := s.interrupt(ctx, j, node, true)
		if err != nil {
			return n, err
		}
		if updated != nil {
			n++
		}
	}
	return n, nil
}

// killLeftovers kills what a rescued job started on this host, before the
// job is recorded, so nothing a dead node started keeps running.
func (s *Scheduler) killLeftovers(jobID string, pgid int) {
	var err error
	if s.cfg.KillLeftovers != nil {
		err = s.cfg.KillLeftovers(jobID, pgid)
	} else if pgid <= 1 {
		return // no group to kill (and -1 or 0 would reach other processes)
	} else if kerr := syscall.Kill(-pgid, syscall.SIGKILL); kerr != nil && !errors.Is(kerr, syscall.ESRCH) {
		err = kerr
	}
	if err != nil {
		s.log.Warn("kill what a rescued job started", "job_id", jobID, "pgid", pgid, "error", err)
	}
}

// Nodes lists the live nodes sharing the database, with the leader and
// the number of jobs each runs.
func (s *Scheduler) Nodes(ctx context.Context) ([]NodeInfo, error) {
	var nodes []Node
	db := s.db.WithContext(ctx)
	if err := db.Where("heartbeat_ms >= "+s.d.nowMS+" - ?", s.cfg.RescueAfter.Milliseconds()).Order("started_ms, id").Find(&nodes).Error; err != nil {
		return nil, err
	}
	var lease Lease
	if err := db.Where("name = ? AND expires_ms >= "+s.d.nowMS, leaderLease).Limit(1).Find(&lease).Error; err != nil {
		return nil, err
	}
	var counts []struct {
		Node string
		N    int
	}
	if err := db.Model(&Job{}).Select("node, count(*) AS n").Where("status = ?", StatusRunning).Group("node").Scan(&counts).Error; err != nil {
		return nil, err
	}
	running := map[string]int{}
	for _, c := range counts {
		running[c.Node] = c.N
	}
	out := make([]NodeInfo, len(nodes))
	for i, n := range nodes {
		out[i] = NodeInfo{ID: n.ID, Hostname: n.Hostname, PID: n.PID, StartedAt: msTime(n.StartedMS), HeartbeatAt: msTime(n.HeartbeatMS),
			Leader: lease.Holder == n.ID, Running: running[n.ID]}
	}
	return out, nil
}
