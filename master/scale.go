package master

import (
	"fmt"
	"sort"
)

// scale grows or shrinks the pool to n slots. New slots take the lowest
// free ids; removed slots are the highest, and their workers drain.
func (m *Master) scale(n int) error {
	switch {
	case n < 1:
		return fmt.Errorf("cannot scale to %d: at least 1 worker is needed", n)
	case n > MaxWorkers:
		return fmt.Errorf("cannot scale to %d: at most %d workers", n, MaxWorkers)
	case m.stopping:
		return errStopping
	}
	from := len(m.slots)
	for id := 1; len(m.slots) < n; id++ {
		if _, used := m.slots[id]; !used {
			s := &slot{id: id}
			m.slots[id] = s
			m.fill(s)
		}
	}
	if len(m.slots) > n {
		ids := make([]int, 0, len(m.slots))
		for id := range m.slots {
			ids = append(ids, id)
		}
		sort.Sort(sort.Reverse(sort.IntSlice(ids)))
		for _, id := range ids[:len(ids)-n] {
			m.removeSlot(m.slots[id])
		}
	}
	m.cfg.Workers = n
	if from != n {
		m.log.Info("scaled", "from", from, "to", n)
	}
	return nil
}

func (m *Master) removeSlot(s *slot) {
	delete(m.slots, s.id)
	if s.respawn != nil {
		s.respawn.Stop()
		s.respawn = nil
	}
	if r := m.roll; r != nil && r.slot == s {
		m.kill(r.next, "its slot was scaled away")
		r.slot, r.next = nil, nil
		m.rollNext()
	}
	if m.rpLeave(s) {
		return // its worker drains once its sockets' queues are empty
	}
	if s.worker != nil {
		m.drain(s.worker)
	}
}
