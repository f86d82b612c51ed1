package master

import (
	"errors"
	"syscall"
)

// startAdmin starts the admin server if one is configured, with the
// pool's state published once so that it answers from the start.
func (m *Master) startAdmin() (*admin, error) {
	m.publish()
	if m.cfg.AdminListen == "" {
		return nil, nil
	}
	return m.listenAdmin(m.cfg.AdminListen)
}

// delayStop begins the shutdown delay for a stop signal: /readyz fails at
// once, so that a load balancer stops sending new connections, while the
// workers serve on; the graceful stop follows when the delay is over. It
// reports false when there is no delay to wait for.
func (m *Master) delayStop() bool {
	d := m.cfg.ShutdownDelay
	if d <= 0 {
		return false
	}
	m.stats.shutting.Store(true)
	m.log.Info("stop signal: not ready any more; workers serve on", "shutdown_delay", d)
	m.delay = m.clock.AfterFunc(d, func() { m.send(m.endDelay) })
	return true
}

// endDelay starts the graceful stop once the shutdown delay is over.
func (m *Master) endDelay() {
	if m.delay == nil || m.stopping {
		return
	}
	m.delay = nil
	m.log.Info("shutdown delay over: graceful stop")
	m.stopGracefully()
}

// cancelDelay stops a shutdown delay that a stop overtook.
func (m *Master) cancelDelay() {
	if m.delay != nil {
		m.delay.Stop()
		m.delay = nil
	}
}

// reopenLogs passes SIGUSR1 on to every worker, which reopens its access
// log (after logrotate has renamed it).
func (m *Master) reopenLogs() {
	m.log.Info("reopening access logs", "signal", "SIGUSR1", "workers", len(m.workers))
	for w := range m.workers {
		if err := syscall.Kill(w.pid, syscall.SIGUSR1); err != nil && !errors.Is(err, syscall.ESRCH) {
			w.log.Warn("cannot pass SIGUSR1 on", "error", err)
		}
	}
}
