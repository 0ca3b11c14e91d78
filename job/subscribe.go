package job

import "strconv"

// subscriberBuffer holds more events than one job can produce between two
// reads (pending, running, a terminal state, deletion, with room for
// retried attempts), so a subscriber that reads promptly never misses one.
const subscriberBuffer = 16

type subscriber struct{ ch chan Event }

// subGroup is the subscribers of one job, with the last state they were
// sent: a change learned twice (from this node and from a notification or
// a poll) is sent once.
type subGroup struct {
	subs map[*subscriber]struct{}
	last string
}

// Subscribe returns the changes of job id from now on, wherever the job
// runs, and a function that ends the subscription. Changes made on this
// node arrive at once; those of other nodes through notifications
// (PostgreSQL) or within Config.PollInterval (SQLite shared by several
// processes). Events are sent without blocking the scheduler: a subscriber
// that stops reading loses events past the buffer.
func (s *Scheduler) Subscribe(id string) (<-chan Event, func()) {
	sub := &subscriber{ch: make(chan Event, subscriberBuffer)}
	s.mu.Lock()
	g := s.subs[id]
	if g == nil {
		g = &subGroup{subs: map[*subscriber]struct{}{}}
		s.subs[id] = g
	}
	g.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if g := s.subs[id]; g != nil {
			delete(g.subs, sub)
			if len(g.subs) == 0 {
				delete(s.subs, id)
			}
		}
	}
}

func stateKey(j *Job) string { return string(j.Status) + "/" + strconv.Itoa(j.Attempt) }

func (s *Scheduler) publish(id string, ev Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.subs[id]
	if g == nil {
		return
	}
	key := "deleted"
	if !ev.Deleted {
		key = stateKey(ev.Job)
	}
	if key == g.last {
		return
	}
	g.last = key
	for sub := range g.subs {
		select {
		case sub.ch <- ev:
		default:
		}
	}
}

// subscribedElsewhere returns the ids with subscribers whose jobs do not
// run on this node: their changes must be learned from the database.
func (s *Scheduler) subscribedElsewhere() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for id := range s.subs {
		if s.running[id] == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

func (s *Scheduler) hasSubscribers(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[id] != nil
}

// changed publishes a stored transition to subscribers and the observer.
func (s *Scheduler) changed(j *Job, from Status) {
	s.publish(j.ID, Event{Job: j})
	if s.cfg.Observer != nil {
		s.cfg.Observer.JobChanged(j, from)
	}
}
