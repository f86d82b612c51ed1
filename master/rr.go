package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"sort"

	"github.com/clusterd/clusterd/ipc"
)

// Scheduling modes.
const (
	// SchedShared: every worker accepts on the master's listening socket
	// (Node's SCHED_NONE, nginx's default).
	SchedShared = "shared"
	// SchedRR: the master accepts and hands each connection to the next
	// ready worker in turn (Node's SCHED_RR).
	SchedRR = "rr"
)

// maxQueued bounds the connections the master holds while no worker is
// ready to take them; beyond it new connections are closed.
const maxQueued = 4096

// rrState is the round-robin scheduler, owned by the supervisor goroutine.
// Unlike Node's, a connection is the master's until a worker has said it
// serves it: one that is refused, or whose worker dies before answering,
// goes to another worker instead of leaking.
type rrState struct {
	seq       uint64
	next      int                 // the slot after the last one given a connection
	pending   map[uint64]*handoff // sent, not yet answered
	queue     []*os.File          // accepted while no worker was ready
	acceptors map[string]net.Listener
}

type handoff struct {
	f     *os.File
	w     *worker
	tries int
}

func newRRState() *rrState {
	return &rrState{pending: map[uint64]*handoff{}, acceptors: map[string]net.Listener{}}
}

// startAcceptor begins accepting on the listener for key, once.
func (m *Master) startAcceptor(key string, f *os.File) error {
	if _, ok := m.rr.acceptors[key]; ok {
		return nil
	}
	ln, err := net.FileListener(f)
	if err != nil {
		return err
	}
	m.rr.acceptors[key] = ln
	m.wg.Add(1)
	go m.acceptLoop(ln)
	return nil
}

// acceptLoop accepts connections and passes them to the supervisor. At the
// descriptor limit it pauses between attempts (5ms doubling to 1s) instead
// of spinning, and logs once per burst.
func (m *Master) acceptLoop(ln net.Listener) {
	defer m.wg.Done()
	var retry acceptRetry
	for {
		f, err := acceptFile(ln)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			if !m.acceptFailed(m.rrErrLog, &retry, "accept failed, retrying", err) {
				return
			}
			continue
		}
		retry.reset()
		m.send(func() { m.dispatch(&handoff{f: f}) }, f)
	}
}

// acceptFile accepts a connection and returns it as a file the supervisor
// can pass on.
func acceptFile(ln net.Listener) (*os.File, error) {
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	fc, ok := c.(interface{ File() (*os.File, error) }) // *net.TCPConn or *net.UnixConn
	if !ok {
		return nil, fmt.Errorf("accept: unexpected connection type %T", c)
	}
	return fc.File()
}

// stopAccepting closes the acceptors and every connection not yet handed
// off; the master's listening sockets stay open.
func (m *Master) stopAccepting() {
	for key, ln := range m.rr.acceptors {
		_ = ln.Close()
		delete(m.rr.acceptors, key)
	}
	for _, f := range m.rr.queue {
		_ = f.Close()
	}
	m.rr.queue = nil
}

// dispatch hands f to the next ready worker, or queues it until one is.
func (m *Master) dispatch(h *handoff) {
	if m.stopping {
		_ = h.f.Close()
		return
	}
	for h.tries <= len(m.workers) {
		w := m.nextReady()
		if w == nil {
			break
		}
		h.tries++
		m.rr.seq++
		if err := w.conn.Send(ipc.Message{Type: ipc.Handoff, Seq: m.rr.seq}, h.f); err != nil {
			m.kill(w, "cannot hand it a connection: "+err.Error())
			continue
		}
		h.w = w
		m.rr.pending[m.rr.seq] = h
		return
	}
	if len(m.rr.queue) >= maxQueued || h.tries > len(m.workers) {
		if ok, n := m.rrDropLog.allow(m.now()); ok {
			m.log.Warn("dropped a connection: no worker took it", "queued", len(m.rr.queue), "tries", h.tries, "drops_not_logged", n)
		}
		_ = h.f.Close()
		return
	}
	m.rr.queue = append(m.rr.queue, h.f)
}

// nextReady returns the ready worker after the last one used, by slot.
func (m *Master) nextReady() *worker {
	var ready []*worker
	for w := range m.workers {
		if w.state == Ready && w.killReason == "" {
			ready = append(ready, w)
		}
	}
	if len(ready) == 0 {
		return nil
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].slot < ready[j].slot })
	for _, w := range ready {
		if w.slot >= m.rr.next {
			m.rr.next = w.slot + 1
			return w
		}
	}
	m.rr.next = ready[0].slot + 1
	return ready[0]
}

// handoffReply settles a handed-off connection: served, or passed on.
func (m *Master) handoffReply(w *worker, msg ipc.Message) {
	h, ok := m.rr.pending[msg.Seq]
	if !ok || h.w != w {
		w.log.Warn("answer for an unknown connection", "seq", msg.Seq)
		return
	}
	delete(m.rr.pending, msg.Seq)
	if msg.Err == "" {
		_ = h.f.Close()
		return
	}
	w.log.Debug("connection refused, passing it on", "why", msg.Err)
	m.dispatch(h)
}

// redispatch passes on the connections w had not answered for when it ended.
func (m *Master) redispatch(w *worker) {
	for seq, h := range m.rr.pending {
		if h.w == w {
			delete(m.rr.pending, seq)
			m.dispatch(h)
		}
	}
}

// flushQueue hands the queued connections to the workers now ready.
func (m *Master) flushQueue() {
	queued := m.rr.queue
	m.rr.queue = nil
	for _, f := range queued {
		m.dispatch(&handoff{f: f})
	}
}
