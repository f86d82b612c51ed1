package master

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// errRolling refuses a reload while one runs: a second request would only
// restart workers that were just started; the caller can retry when the
// running roll has finished.
var errRolling = errors.New("a rolling restart is already in progress; try again when it has finished")

// roll is a rolling restart in progress: one slot at a time, a replacement
// of the new generation starts; once it is ready the old worker drains.
type roll struct {
	generation int
	queue      []int   // slots still to replace
	slot       *slot   // the slot being replaced
	next       *worker // its replacement, starting
	started    time.Time
	waiters    []chan<- response
	again      bool // a SIGHUP came while it ran: roll once more after it
	// recycle, if set, is the limit one worker passed: the roll replaces
	// it alone, keeping its generation; waiters and again are for a
	// reload asked for meanwhile, which follows it.
	recycle  string
	replaced int       // workers replaced so far
	drained  []*worker // the workers it replaced
}

// reloadSignal starts a rolling restart for SIGHUP. One that arrives while
// a roll runs is not refused (a signal has no one to tell): the roll runs
// once more when this one ends, so the workers run the binary on disk as
// of the last SIGHUP.
func (m *Master) reloadSignal() {
	if r := m.roll; r != nil && !m.stopping {
		if !r.again {
			m.log.Info("reload queued: a rolling restart is in progress; another follows it", "signal", "SIGHUP", "generation", r.generation)
		}
		r.again = true
		return
	}
	m.bySignal("reload", "SIGHUP", m.startRoll)
}

// startRoll begins a rolling restart. reply, if not nil, receives the
// outcome when the roll ends.
func (m *Master) startRoll(reply chan<- response) error {
	switch {
	case m.stopping:
		return errStopping
	case m.roll != nil && m.roll.recycle != "":
		m.roll.queueReload(reply)
		return nil
	case m.roll != nil:
		return errRolling
	case m.upgrade != nil:
		return errUpgrading
	}
	if m.cfg.CheckReload != nil {
		if err := m.cfg.CheckReload(); err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
	}
	m.generation++
	r := &roll{generation: m.generation, started: m.now()}
	for id := range m.slots {
		r.queue = append(r.queue, id)
	}
	sort.Ints(r.queue)
	if reply != nil {
		r.waiters = append(r.waiters, reply)
	}
	m.roll = r
	m.log.Info("rolling restart", "generation", r.generation, "workers", len(r.queue))
	m.rollNext()
	return nil
}

// rollNext starts the replacement for the next slot, or ends the roll.
func (m *Master) rollNext() {
	r := m.roll
	for len(r.queue) > 0 {
		s := m.slots[r.queue[0]]
		r.queue = r.queue[1:]
		if s == nil || r.recycle == "" && rolled(s, r.generation) {
			continue // scaled away, or refilled with the new generation meanwhile
		}
		w, err := m.startWorker(spawnSpec{slot: s.id, generation: r.generation})
		if err != nil {
			m.rollFinish(fmt.Errorf("cannot start a replacement for worker %d: %w", s.id, err))
			return
		}
		r.slot, r.next = s, w
		return
	}
	m.rollFinish(nil)
}

// rolled reports whether slot s already runs generation gen, or will: a
// worker that crashed during the roll is replaced with the newest one.
func rolled(s *slot, gen int) bool {
	if s.worker == nil {
		return s.respawn != nil
	}
	return s.worker.generation >= gen
}

// rollReady moves a ready replacement into its slot and drains the worker it replaces.
func (m *Master) rollReady(w *worker) {
	r := m.roll
	if r == nil || r.next != w {
		return
	}
	s := r.slot
	old := s.worker
	s.worker, s.crashes = w, 0
	if s.respawn != nil {
		s.respawn.Stop()
		s.respawn = nil
	}
	if old != nil {
		m.drain(old)
		r.drained = append(r.drained, old)
	}
	r.slot, r.next = nil, nil
	r.replaced++
	m.rollNext()
}

// rollExited aborts the roll when its replacement died before it was
// ready. The workers not yet replaced keep serving.
func (m *Master) rollExited(w *worker, status string) bool {
	r := m.roll
	if r == nil || r.next != w {
		return false
	}
	why := w.killReason
	if why == "" {
		why = "exited during start-up (" + status + ")"
	}
	r.slot, r.next = nil, nil
	m.rollFinish(fmt.Errorf("replacement for worker %d %s; kept the running workers", w.slot, why))
	return true
}

// rollAbort ends a roll in progress, killing its half-started replacement.
func (m *Master) rollAbort(reason string) {
	r := m.roll
	if r == nil {
		return
	}
	if r.next != nil {
		m.kill(r.next, reason)
	}
	m.rollFinish(errors.New("rolling restart aborted: " + reason))
}

func (m *Master) rollFinish(err error) {
	r := m.roll
	m.roll = nil
	if r.recycle != "" {
		m.recycleFinished(r, err)
		return
	}
	m.stats.rollDone(err == nil)
	resp := response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
		m.log.Error("rolling restart failed", "generation", r.generation, "error", err)
	} else {
		resp.Message = fmt.Sprintf("rolled %d workers to generation %d", len(m.slots), r.generation)
		m.log.Info("rolling restart done", "generation", r.generation, "took", m.now().Sub(r.started).Round(time.Millisecond))
	}
	m.answerRoll(&rollAnswer{waiters: r.waiters, resp: resp, replaced: r.drained})
	switch {
	case r.again && err == nil:
		m.reloadSignal()
	case r.again:
		m.log.Warn("queued reload dropped: the rolling restart failed", "signal", "SIGHUP")
	}
	m.recycleNext()
}

// stopWait bounds how long a finished roll's answer waits for the workers
// it replaced to say they accept no more connections.
const stopWait = time.Second

// A rollAnswer is the answer to a finished rolling restart, held until
// every worker it replaced has stopped accepting (ipc.Stopped) or exited,
// for at most stopWait: once the caller (ctl reload, or systemd, told
// READY=1) has it, every new connection goes to the new generation.
type rollAnswer struct {
	waiters  []chan<- response
	resp     response
	replaced []*worker
	deadline time.Time
	timer    timer
}

// answerRoll answers a's waiters now, or once the workers it replaced
// have stopped accepting.
func (m *Master) answerRoll(a *rollAnswer) {
	if !m.stillAccepting(a) {
		a.send()
		return
	}
	a.deadline = m.now().Add(stopWait)
	a.timer = m.clock.AfterFunc(stopWait, func() { m.send(m.settleAnswers) })
	m.answers = append(m.answers, a)
}

// stillAccepting reports whether a worker a replaced may still accept.
func (m *Master) stillAccepting(a *rollAnswer) bool {
	for _, w := range a.replaced {
		if _, ok := m.workers[w]; ok && !w.stopped {
			return true
		}
	}
	return false
}

// settleAnswers sends the held answers whose workers have stopped
// accepting, or whose wait is up, or all of them when the master stops.
func (m *Master) settleAnswers() {
	keep := m.answers[:0]
	for _, a := range m.answers {
		if !m.stopping && m.now().Before(a.deadline) && m.stillAccepting(a) {
			keep = append(keep, a)
			continue
		}
		a.timer.Stop()
		a.send()
	}
	clear(m.answers[len(keep):])
	m.answers = keep
}

func (a *rollAnswer) send() {
	for _, c := range a.waiters {
		c <- a.resp
	}
}
