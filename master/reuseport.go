package master

import (
	"os"
	"time"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// Timing of a scale-down under reuseport scheduling.
const (
	// leaveEvery is how often the master looks at the sockets of slots
	// that are going away.
	leaveEvery = 25 * time.Millisecond
	// leaveSettle is how long a leaving slot's socket keeps its worker
	// after it was steered clear, even when its queue looks empty: a
	// handshake that began before the steering still lands there.
	leaveSettle = 200 * time.Millisecond
)

// rpState is the reuseport scheduler, owned by the supervisor goroutine:
// a group of sockets per TCP listener, and the slots being scaled away.
type rpState struct {
	groups  map[string]*rpGroup
	order   []*rpGroup
	leaving []*leavingSlot
	tick    timer
}

// leavingSlot is a slot scaled away whose sockets still hold connections
// the kernel queued before it was steered clear.
type leavingSlot struct {
	id      int
	w       *worker // nil if the slot had no worker
	since   time.Time
	drained bool // its worker was asked to drain
	socks   []rpMember
}

type rpMember struct {
	g *rpGroup
	s *rpSocket
}

func newRPState() *rpState { return &rpState{groups: map[string]*rpGroup{}} }

// rpListen starts the group of a listener the master bound for reuseport
// scheduling, and says so of a listener that cannot have one.
func (m *Master) rpListen(l *listener) {
	if m.cfg.Sched != SchedReuseport {
		return
	}
	if !l.reuseport {
		m.log.Warn("reuseport scheduling needs a TCP address the master binds: workers share this socket", "listen", l.key, "form", l.form)
		return
	}
	if _, ok := m.rp.groups[l.key]; !ok {
		g := &rpGroup{key: l.key, addr: l.addr, opts: m.cfg.Sockets}
		m.rp.groups[l.key] = g
		m.rp.order = append(m.rp.order, g)
	}
}

// listenerFile is the socket a worker of slot gets for l: the slot's own
// under reuseport scheduling, else the master's.
func (m *Master) listenerFile(l *listener, slot int) (*os.File, error) {
	if !l.reuseport {
		return l.file, nil
	}
	m.rpListen(l)
	s, err := m.rpSocketFor(m.rp.groups[l.key], slot)
	if err != nil {
		return nil, err
	}
	m.rpSteer()
	return s.file, nil
}

// rpSocketFor returns slot's socket in g, adding one to the group if the
// slot has none.
func (m *Master) rpSocketFor(g *rpGroup, slot int) (*rpSocket, error) {
	for _, s := range g.members {
		if s.slot == slot && !s.leaving {
			return s, nil
		}
	}
	s, err := g.join(slot)
	if err != nil {
		return nil, err
	}
	m.log.Debug("reuseport socket added", "listen", g.key, "id", slot, "sockets", len(g.members))
	return s, nil
}

// rpFill gives slot its sockets before its worker starts, so that the
// kernel queues connections for it from the first moment.
func (m *Master) rpFill(slot int) {
	for _, g := range m.rp.order {
		if _, err := m.rpSocketFor(g, slot); err != nil {
			m.log.Error("cannot add a reuseport socket", "listen", g.key, "id", slot, "error", err)
		}
	}
	m.rpSteer()
}

// rpSteer steers each group's new connections to the sockets of slots
// whose worker serves; while none does (at start, or a single worker being
// replaced), to every socket that stays, where they wait in its queue.
func (m *Master) rpSteer() {
	for _, g := range m.rp.order {
		var serving, staying []int
		for i, s := range g.members {
			if s.leaving {
				continue
			}
			staying = append(staying, i)
			if sl := m.slots[s.slot]; sl != nil && sl.worker != nil && sl.worker.state == Ready {
				serving = append(serving, i)
			}
		}
		idx := serving
		if len(idx) == 0 {
			idx = staying
		}
		if err := g.steer(idx); err != nil {
			m.log.Error("cannot steer connections", "listen", g.key, "error", err)
		}
	}
}

// rpLeave takes slot s's sockets out of their groups' steering; its worker
// keeps accepting what they queued and drains once they are empty. It
// reports whether s had reuseport sockets.
func (m *Master) rpLeave(s *slot) bool {
	ls := &leavingSlot{id: s.id, w: s.worker, since: m.now()}
	for _, g := range m.rp.order {
		for _, x := range g.members {
			if x.slot == s.id && !x.leaving {
				x.leaving = true
				ls.socks = append(ls.socks, rpMember{g, x})
			}
		}
	}
	if len(ls.socks) == 0 {
		return false
	}
	m.rpSteer()
	m.rp.leaving = append(m.rp.leaving, ls)
	m.log.Info("worker leaving: new connections steered to the others", "id", s.id)
	m.rpScheduleLeave()
	return true
}

func (m *Master) rpScheduleLeave() {
	if m.rp.tick != nil || len(m.rp.leaving) == 0 {
		return
	}
	m.rp.tick = m.clock.AfterFunc(leaveEvery, func() {
		m.send(func() {
			m.rp.tick = nil
			m.rpLeaveStep()
		})
	})
}

// rpExited moves on the leaving slots once a worker has exited.
func (m *Master) rpExited() {
	m.rpSteer()
	m.rpLeaveStep()
}

// rpLeaveStep moves every leaving slot on: a worker whose sockets are
// empty (or that had its graceful timeout to empty them) is drained; the
// master hands what still arrives to the other workers; once the worker
// has exited its sockets close.
func (m *Master) rpLeaveStep() {
	if m.stopping {
		return
	}
	now := m.now()
	live := m.rp.leaving[:0]
	for _, ls := range m.rp.leaving {
		gone := ls.w == nil || ls.w.state.Terminal()
		if !ls.drained && (gone || m.rpEmpty(ls) && now.Sub(ls.since) >= leaveSettle ||
			now.Sub(ls.since) >= m.cfg.GracefulTimeout) {
			ls.drained = true
			if !gone {
				m.drain(ls.w)
			}
		}
		if ls.drained {
			m.rpSweep(ls)
		}
		if !gone {
			live = append(live, ls)
			continue
		}
		for _, x := range ls.socks {
			x.g.close(x.s)
		}
		m.log.Info("reuseport sockets closed", "id", ls.id)
	}
	m.rp.leaving = live
	m.rpSteer()
	m.rpScheduleLeave()
}

// rpEmpty reports whether no connection waits in a leaving slot's sockets.
func (m *Master) rpEmpty(ls *leavingSlot) bool {
	for _, x := range ls.socks {
		if n, err := x.s.queued(); err != nil || n > 0 {
			return false
		}
	}
	return true
}

// rpSweep accepts what waits in a drained slot's sockets and hands it to
// the other workers, as round-robin scheduling does.
func (m *Master) rpSweep(ls *leavingSlot) {
	for _, x := range ls.socks {
		for {
			f, err := x.s.acceptOne()
			if err != nil {
				m.log.Warn("accept on a leaving socket", "id", ls.id, "error", err)
			}
			if f == nil {
				break
			}
			fd, err := rawfd.DupFile(f)
			_ = f.Close()
			if err != nil {
				m.log.Warn("accept on a leaving socket", "id", ls.id, "error", err)
				continue
			}
			m.rr.held.Add(1)
			m.dispatch(&handoff{fd: fd})
		}
	}
}

// rpCloseAll closes every slot's socket.
func (m *Master) rpCloseAll() {
	if m.rp.tick != nil {
		m.rp.tick.Stop()
		m.rp.tick = nil
	}
	for _, g := range m.rp.order {
		for len(g.members) > 0 {
			g.close(g.members[0])
		}
	}
}
