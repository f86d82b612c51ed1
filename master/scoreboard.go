package master

import (
	"github.com/clusterd/clusterd/internal/scoreboard"
)

// openBoard creates the workers' scoreboard under shared scheduling,
// where they accept on one socket and each holds off when it has clearly
// more than its share of the open connections. Without one (another mode,
// or memfd_create fails) the kernel alone decides which worker accepts.
func (m *Master) openBoard() {
	if m.cfg.Sched != SchedShared || m.board != nil {
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
