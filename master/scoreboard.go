package master

import "github.com/clusterd/clusterd/internal/scoreboard"

// openBoard creates the workers' scoreboard under shared scheduling,
// where they accept on one socket and each holds off when it has clearly
// more than its share of the open connections or of the new ones, and
// under reuseport scheduling, where each accepts on a socket of its own and
// gives idle connections to the master (which hands them to the worker
// with the fewest) when it has clearly more than its share of the open
// ones. Without one (rr, or memfd_create fails) the kernel alone
// decides which worker accepts.
func (m *Master) openBoard() {
	if (m.cfg.Sched != SchedShared && m.cfg.Sched != SchedReuseport) || m.board != nil {
		return
	}
	f, b, err := scoreboard.Create()
	if err != nil {
		m.log.Warn("no scoreboard: new connections go to whichever worker the kernel wakes", "error", err)
		return
	}
	baton, err := scoreboard.NewBaton()
	if err != nil {
		m.log.Warn("no scoreboard: new connections go to whichever worker the kernel wakes", "error", err)
		_ = f.Close()
		_ = b.Close()
		return
	}
	m.boardFile, m.board, m.baton = f, b, baton
}

func (m *Master) closeBoard() {
	if m.board == nil {
		return
	}
	_ = m.boardFile.Close()
	_ = m.baton.Close()
	_ = m.board.Close()
	m.board, m.boardFile, m.baton = nil, nil, nil
}

// claimBoardSlot returns the lowest board slot no worker process holds,
// zeroed, or -1 without a board or a free slot.
func (m *Master) claimBoardSlot() int {
	if m.board == nil {
		return -1
	}
	taken := make(map[int]bool, len(m.workers))
	for w := range m.workers {
		if w.boardSlot >= 0 {
			taken[w.boardSlot] = true
		}
	}
	for i := 0; i < scoreboard.Slots; i++ {
		if !taken[i] {
			m.board.Claim(i)
			return i
		}
	}
	return -1
}

// boardState marks whether w takes part in the share: while it is ready.
func (w *worker) boardState() {
	if w.board != nil && w.boardSlot >= 0 {
		w.board.SetActive(w.boardSlot, w.state == Ready && w.killReason == "")
	}
}

// leaveBoard clears w's slot once it has exited.
func (w *worker) leaveBoard() {
	if w.board != nil && w.boardSlot >= 0 {
		w.board.Clear(w.boardSlot)
		w.boardSlot = -1
	}
}

// passOn hands the connections a worker passed (ipc.Pass), which the
// master holds, to the ready worker with the fewest (rpLoad), which may be
// the passing one: it decided on counts that lag the sockets' queues.
func (m *Master) passOn(from *worker, fds []int) {
	hs := make([]*handoff, len(fds))
	for i, fd := range fds {
		hs[i] = &handoff{fd: fd, idle: true}
	}
	ready := m.readyWorkers()
	load := make(map[*worker]int64, len(ready))
	for _, w := range ready {
		load[w] = m.rpLoad(w)
	}
	pick := func() *worker {
		w := m.leastBy(ready, func(w *worker) int64 { return load[w] })
		if w != nil {
			load[w]++
		}
		return w
	}
	m.handOut(hs, pick, m.dispatch)
}

// rpLoad is how many connections worker w has or is about to have: open
// (on the board), handed to it and not yet answered for, and waiting in
// its reuseport sockets' queues.
func (m *Master) rpLoad(w *worker) int64 {
	n := w.handed
	if m.board != nil && w.boardSlot >= 0 {
		n += m.board.Open(w.boardSlot)
	}
	for _, g := range m.rp.order {
		for _, s := range g.members {
			if s.slot == w.slot && !s.leaving {
				q, _ := s.queued()
				n += int64(q)
			}
		}
	}
	return n
}
