package master

import (
	"crypto/rand"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// DefaultTicketRotate is how often the master replaces the TLS session
// ticket key by default. A ticket stays valid for up to two periods: the
// previous key is kept for decryption.
const DefaultTicketRotate = time.Hour

// ticketKeysKept is how many keys the workers hold: the current one, which
// encrypts new tickets, and the previous one.
const ticketKeysKept = 2

// startTickets makes the first session ticket key and schedules the
// rotations, when the workers serve TLS.
func (m *Master) startTickets() {
	if m.cfg.TicketKeys {
		m.rotateTickets()
	}
}

// rotateTickets puts a new key first, drops the oldest beyond
// ticketKeysKept, tells every worker and schedules the next rotation.
func (m *Master) rotateTickets() {
	if m.stopping {
		return
	}
	key := make([]byte, ipc.TicketKeyLen)
	_, _ = rand.Read(key) // never fails (crypto/rand's contract)
	m.tickets = append([][]byte{key}, m.tickets[:min(len(m.tickets), ticketKeysKept-1)]...)
	for w := range m.workers {
		m.sendTickets(w)
	}
	m.ticketTimer = m.clock.AfterFunc(m.cfg.TicketRotate, func() { m.send(m.rotateTickets) })
	m.log.Debug("session ticket keys rotated", "keys", len(m.tickets))
}

// sendTickets gives w the current ticket keys; nothing when the workers
// serve no TLS.
func (m *Master) sendTickets(w *worker) {
	if len(m.tickets) == 0 || w.state.Terminal() {
		return
	}
	if err := w.conn.Send(ipc.Message{Type: ipc.TicketKeys, Keys: m.tickets}); err != nil {
		w.log.Warn("cannot send session ticket keys", "error", err)
	}
}
