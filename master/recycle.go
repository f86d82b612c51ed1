package master

import (
	"fmt"
	"time"
)

// Limits after which a worker is recycled: replaced like one slot of a
// rolling restart (a replacement starts; once it serves, the old worker
// drains), one at a time, so the pool never has more than one slot short
// of a ready worker.
const (
	LimitRequests = "max_requests"
	LimitRSS      = "max_rss"
)

// recycler queues the workers past a limit until the roll machinery is free.
type recycler struct {
	queue  []*worker
	reason map[*worker]string // queued workers and the limit each passed
}

// checkLimits queues w for recycling if its last report passes a limit.
func (m *Master) checkLimits(w *worker) {
	st := m.stats.live[w]
	if st == nil || w.state != Ready || m.recycle.reason[w] != "" || m.replacing(w) {
		return
	}
	var why, detail string
	switch {
	case m.cfg.MaxRequests > 0 && st.Requests() >= m.cfg.MaxRequests:
		why, detail = LimitRequests, fmt.Sprintf("served %d requests", st.Requests())
	case m.cfg.MaxRSS > 0 && st.RSS > m.cfg.MaxRSS:
		why, detail = LimitRSS, fmt.Sprintf("resident memory %d bytes", st.RSS)
	default:
		return
	}
	if m.recycle.reason == nil {
		m.recycle.reason = map[*worker]string{}
	}
	m.recycle.reason[w] = why
	m.recycle.queue = append(m.recycle.queue, w)
	w.log.Info("worker past a limit: queued for replacement", "limit", why, "detail", detail, "queued", len(m.recycle.queue))
	m.recycleNext()
}

// replacing reports whether a roll will replace w anyway: a rolling
// restart (the next heartbeat after it checks its workers), or the
// recycling of w itself.
func (m *Master) replacing(w *worker) bool {
	r := m.roll
	return r != nil && (r.recycle == "" || r.slot != nil && r.slot.worker == w)
}

// recycleNext replaces the next queued worker that still serves its slot,
// unless a roll (a reload or another recycling) is running or the master
// is stopping.
func (m *Master) recycleNext() {
	rc := &m.recycle
	for m.roll == nil && !m.stopping && len(rc.queue) > 0 {
		w := rc.queue[0]
		rc.queue = rc.queue[1:]
		why := rc.reason[w]
		delete(rc.reason, w)
		s := m.slots[w.slot]
		if s == nil || s.worker != w || w.state != Ready {
			continue // replaced, scaled away or gone meanwhile
		}
		w.log.Info("recycling worker", "limit", why)
		m.roll = &roll{generation: m.generation, queue: []int{s.id}, started: m.now(), recycle: why}
		m.rollNext()
	}
}

// recycleFinished ends the roll that recycled one worker, then runs the
// reload asked for meanwhile, if any, or the next recycling.
func (m *Master) recycleFinished(r *roll, err error) {
	switch {
	case err != nil:
		m.log.Error("recycling failed; the worker serves on", "limit", r.recycle, "error", err)
	case r.replaced == 0:
		m.log.Debug("recycling not needed: the slot went away", "limit", r.recycle)
	default:
		m.stats.recycled[r.recycle]++
		m.log.Info("worker recycled", "limit", r.recycle, "took", m.now().Sub(r.started).Round(time.Millisecond))
	}
	if r.again {
		if err := m.startRoll(nil); err != nil {
			for _, c := range r.waiters {
				c <- response{Error: err.Error()}
			}
		} else {
			m.roll.waiters = r.waiters
		}
	}
	m.recycleNext()
}

// queueReload makes a reload asked for while a worker is recycled run
// after it; reply, if not nil, gets the reload's outcome.
func (r *roll) queueReload(reply chan<- response) {
	r.again = true
	if reply != nil {
		r.waiters = append(r.waiters, reply)
	}
}
