package master

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
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
	if !m.cfg.TicketKeys {
		m.tickets = nil // passed by an old master that served TLS
		return
	}
	if len(m.tickets) == 0 {
		m.rotateTickets()
		return
	}
	// Inherited from the old master of an upgrade: tickets it issued
	// resume here, and the keys rotate when they would have there.
	next := max(m.cfg.TicketRotate-m.now().Sub(m.ticketsAt), 0)
	m.ticketTimer = m.clock.AfterFunc(next, func() { m.send(m.rotateTickets) })
	m.log.Debug("session ticket keys from the old master", "keys", len(m.tickets), "next_rotation", next)
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
	m.ticketsAt = m.now()
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

// The old master of an upgrade passes its session ticket keys to the new
// one on their channel, as its first line, so that sessions resume across
// the upgrade; the environment, which other processes may read, never
// holds them. The line is "tickets AGE KEY…": AGE the milliseconds since
// the first key was made, each KEY in hex, newest first.
const lineTickets = "tickets"

// ticketsLine is the line that passes the master's ticket keys; "" when it
// has none.
func (m *Master) ticketsLine() string {
	if len(m.tickets) == 0 {
		return ""
	}
	parts := []string{lineTickets, strconv.FormatInt(m.now().Sub(m.ticketsAt).Milliseconds(), 10)}
	for _, k := range m.tickets {
		parts = append(parts, hex.EncodeToString(k))
	}
	return strings.Join(parts, " ")
}

// parseTicketsLine reads a ticketsLine: the keys, newest first, and the
// age of the newest.
func parseTicketsLine(line string) ([][]byte, time.Duration, error) {
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != lineTickets {
		return nil, 0, errors.New("no session ticket keys")
	}
	ms, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ms < 0 {
		return nil, 0, fmt.Errorf("session ticket key age %q", f[1])
	}
	var keys [][]byte
	for _, h := range f[2:min(len(f), 2+ticketKeysKept)] {
		k, err := hex.DecodeString(h)
		if err != nil || len(k) != ipc.TicketKeyLen {
			return nil, 0, errors.New("a session ticket key is malformed")
		}
		keys = append(keys, k)
	}
	return keys, time.Duration(ms) * time.Millisecond, nil
}
