package master

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// fill starts a worker in slot s, or schedules a retry if that fails.
func (m *Master) fill(s *slot) {
	m.rpFill(s.id)
	w, err := m.startWorker(spawnSpec{slot: s.id, generation: m.generation})
	if err != nil {
		m.log.Error("cannot start worker", "id", s.id, "error", err)
		m.respawnLater(s, backoff(s.crashes+2))
		return
	}
	s.worker = w
}

// respawnLater refills slot s after d.
func (m *Master) respawnLater(s *slot, d time.Duration) {
	s.restarts++
	if d == 0 {
		m.fill(s)
		return
	}
	var t timer
	t = m.clock.AfterFunc(d, func() { m.send(func() { m.respawnDue(s, t) }) })
	s.respawn = t
}

// respawnDue refills slot s when its respawn timer t fired, unless the
// slot went away, the respawn was cancelled or the master is stopping.
func (m *Master) respawnDue(s *slot, t timer) {
	if s.respawn != t || m.slots[s.id] != s || m.stopping {
		return
	}
	s.respawn = nil
	m.fill(s)
}

func (m *Master) message(w *worker, msg ipc.Message, files []*os.File) {
	for _, f := range files { // no worker → master message but Pass (receive) carries fds
		_ = f.Close()
	}
	switch msg.Type {
	case ipc.Online:
		w.setState(Online)
		m.sendTickets(w) // before any listener: the worker serves TLS at once
	case ipc.QueryServer:
		m.queryServer(w, msg)
	case ipc.Listening:
		w.log.Debug("listening", "key", msg.Key)
	case ipc.Ready:
		if w.setState(Ready) {
			w.readyAt = m.now()
			w.lastTick = w.readyAt
			w.log.Info("worker ready", "generation", w.generation, "startup", w.readyAt.Sub(w.started).Round(time.Millisecond))
			m.rollReady(w)
			m.flushQueue()
			m.rpSteer()
		}
	case ipc.HandoffReply:
		m.handoffReply(w, msg)
	case ipc.Stopped:
		w.stopped = true
		m.settleAnswers()
	case ipc.Heartbeat:
		w.lastTick = m.now().Add(-msg.LoopAge)
		w.requests, w.conns, w.handed = msg.Requests, msg.Connections, 0
		m.stats.heartbeat(w, msg.Stats)
		m.checkLimits(w)
	default:
		w.log.Warn("unexpected message from worker", "type", msg.Type)
	}
}

// queryServer answers a worker's request for a listener with the master's
// own socket, binding it on first use (Node's cluster queryServer).
func (m *Master) queryServer(w *worker, q ipc.Message) {
	key := q.Addr
	reply := ipc.Message{Type: ipc.ServerReply, Key: key}
	l, err := m.listeners.get(key)
	if err == nil && m.cfg.Sched == SchedRR {
		err = m.startAcceptor(key, l.file)
		reply.RR = true
	}
	var file *os.File
	if err == nil {
		file, err = m.listenerFile(l, w.slot)
	}
	if err != nil {
		reply.Err = err.Error()
		w.log.Error("listener request failed", "key", key, "error", err)
	}
	var files []*os.File
	if err == nil && !reply.RR {
		files = append(files, file)
	}
	if err := w.conn.Send(reply, files...); err != nil {
		w.log.Warn("cannot answer worker", "error", err)
	}
}

// exited handles the end of a worker process: a worker that was asked to
// go is done; one that was serving a slot is replaced, after a back-off if
// it keeps failing; a replacement that fails during a roll aborts the roll.
func (m *Master) exited(w *worker, waitErr error) {
	delete(m.workers, w)
	defer m.settleAnswers()
	w.leaveBoard()
	defer m.stats.retire(w) // with its final state
	_ = w.conn.Close()
	m.redispatch(w)
	defer m.rpExited()
	status := exitStatus(waitErr)
	uptime := m.now().Sub(w.started).Round(time.Millisecond)
	if w.state == Draining && w.killReason == "" {
		w.setState(Exited)
		w.log.Info("worker exited", "status", status)
		return
	}
	w.setState(Failed)
	if m.rollExited(w, status) {
		return
	}
	s := m.slots[w.slot]
	if m.stopping || s == nil || s.worker != w {
		w.log.Warn("worker ended", append([]any{"status", status}, w.killedFor()...)...)
		return
	}
	s.worker = nil
	d := s.crashed(uptime)
	w.log.Error("worker exited unexpectedly", append([]any{"status", status, "uptime", uptime,
		"restart_in", d, "crashes_in_a_row", s.crashes}, w.killedFor()...)...)
	m.respawnLater(s, d)
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.String()
	}
	if err != nil {
		return err.Error()
	}
	return "exit status 0"
}

// checkHealth kills workers that missed their start-up, heartbeat or drain deadline.
func (m *Master) checkHealth(now time.Time) {
	for w := range m.workers {
		switch {
		case !w.dumpAt.IsZero() && now.Sub(w.dumpAt) > dumpWait:
			m.killNow(w)
		case w.state < Ready && now.Sub(w.started) > m.cfg.ReadyTimeout:
			m.kill(w, fmt.Sprintf("not ready within %v", m.cfg.ReadyTimeout))
		case w.state == Ready && now.Sub(w.lastTick) > m.cfg.WorkerTimeout:
			m.killHung(w, fmt.Sprintf("event loop silent for %v (no heartbeat, or a blocked loop)", now.Sub(w.lastTick).Round(time.Millisecond)))
		case w.state == Draining && now.After(w.drainBy):
			m.kill(w, fmt.Sprintf("still draining after %v", m.cfg.GracefulTimeout))
		}
	}
	m.publish()
}

// kill ends a worker at once (SIGKILL); its exit arrives as an event.
func (m *Master) kill(w *worker, reason string) {
	if w.killReason != "" {
		return
	}
	w.killReason = reason
	w.log.Warn("killing worker", "reason", reason)
	if err := w.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.log.Error("cannot kill worker", "error", err)
	}
}

// drain asks a worker to finish its requests and exit; it is killed if it
// has not exited after the graceful timeout.
func (m *Master) drain(w *worker) {
	if !w.setState(Draining) {
		return
	}
	if err := w.conn.Send(ipc.Message{Type: ipc.Drain}); err != nil {
		m.kill(w, "cannot ask it to drain: "+err.Error())
		return
	}
	w.drainBy = m.now().Add(m.cfg.GracefulTimeout)
}

// errStopping refuses what a stopping master no longer starts.
var errStopping = errors.New("the master is stopping")

// beginStop is what every stop does before it drains or kills the workers:
// no more rolls, upgrades, respawns or accepting.
func (m *Master) beginStop() {
	m.stopping = true
	m.stats.shutting.Store(true)
	defer m.settleAnswers()
	m.cancelDelay()
	m.rollAbort(errStopping.Error())
	m.upgradeAbort(errStopping.Error())
	m.cancelRespawns()
	m.stopAccepting()
}

func (m *Master) stopGracefully() {
	m.beginStop()
	for w := range m.workers {
		m.drain(w)
	}
}

func (m *Master) stopNow(reason string) {
	m.beginStop()
	for w := range m.workers {
		m.kill(w, reason)
	}
}

func (m *Master) cancelRespawns() {
	for _, s := range m.slots {
		if s.respawn != nil {
			s.respawn.Stop()
			s.respawn = nil
		}
	}
}
