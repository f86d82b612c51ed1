package master

import (
	"errors"
	"os"
	"sort"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
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
	// SchedReuseport: each worker slot accepts on a SO_REUSEPORT socket of
	// its own, which the master holds for as long as the slot lives.
	SchedReuseport = "reuseport"
)

// Round-robin policies: which ready worker gets the next connection.
const (
	// RRPolicyRoundRobin: each ready worker in turn (Node's SCHED_RR).
	RRPolicyRoundRobin = "round-robin"
	// RRPolicyLeastConns: the worker with the fewest open connections, as
	// it last reported them (with each hand-off answer and heartbeat) plus
	// those handed to it since.
	RRPolicyLeastConns = "least-conns"
)

// RRPolicies lists the values Config.RRPolicy takes; the first is the default.
var RRPolicies = []string{RRPolicyRoundRobin, RRPolicyLeastConns}

// acceptBatch bounds the connections the master accepts per wake-up.
const acceptBatch = 64

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
	queue     []*handoff          // accepted while no worker was ready
	acceptors map[string]*os.File // the master's pollable copies of the listeners
	// held counts the connections the master holds (accepted, not yet
	// served); the accept loops wait while it is at heldMax, so that the
	// master keeps descriptors for its control socket and its workers.
	held    atomic.Int64
	heldMax int64
}

// fdReserve is how many descriptors the master keeps out of the accept
// loops' reach when it holds connections.
const fdReserve = 32

// heldLimit is the most connections the master holds at once: its
// descriptor limit less fdReserve, at least 8.
func heldLimit() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<40 {
		return 1 << 40
	}
	return max(int64(rl.Cur)-fdReserve, 8)
}

// The connections the master holds are bare descriptors, accepted and
// closed with raw system calls: they never block (the listener is
// non-blocking, and a socket's close does not linger), and an *os.File
// would cost a fcntl and a finalizer each, and every system call a
// possible hand-off of the master's P to another thread.

// acceptConn accepts a connection from the non-blocking listener fd,
// non-blocking already for the worker's event loop (a flag the worker's
// copy shares).
func acceptConn(fd int) (int, error) {
	nfd, _, e := unix.RawSyscall6(unix.SYS_ACCEPT4, uintptr(fd), 0, 0, unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(nfd), nil
}

func closeFD(fd int) { _, _, _ = unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0) }

// closeConn closes a connection the master held.
func (m *Master) closeConn(fd int) {
	closeFD(fd)
	m.rr.held.Add(-1)
}

type handoff struct {
	fd    int
	w     *worker
	tries int
	idle  bool // a keep-alive connection between requests a worker gave away (Pass)
}

func newRRState() *rrState {
	return &rrState{pending: map[uint64]*handoff{}, acceptors: map[string]*os.File{}, heldMax: heldLimit()}
}

// startAcceptor begins accepting on the listener for key, once.
func (m *Master) startAcceptor(key string, f *os.File) error {
	if _, ok := m.rr.acceptors[key]; ok {
		return nil
	}
	ln, err := pollableCopy(f)
	if err != nil {
		return err
	}
	m.rr.acceptors[key] = ln
	m.wg.Add(1)
	go m.acceptLoop(ln)
	return nil
}

// pollableCopy returns a non-blocking duplicate of the listening socket f
// that Go's poller watches, so that accepting waits without a thread.
// (A net.Listener's raw connection cannot wait for reading.)
func pollableCopy(f *os.File) (*os.File, error) {
	fd, err := rawfd.DupFile(f)
	if err != nil {
		return nil, err
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// acceptLoop accepts connections, as many as are queued (up to
// acceptBatch) per wake-up, and passes them to the supervisor together. At
// the descriptor limit it pauses between attempts (5ms doubling to 1s)
// instead of spinning, and logs once per burst.
func (m *Master) acceptLoop(ln *os.File) {
	defer m.wg.Done()
	rc, err := ln.SyscallConn()
	if err != nil {
		m.log.Error("cannot accept", "error", err)
		return
	}
	var retry acceptRetry
	for {
		room := m.rr.heldMax - m.rr.held.Load()
		if room <= 0 {
			if !m.acceptFailed(m.rrErrLog, &retry, "accept paused: the master holds as many connections as its descriptor limit allows", errHeldMax) {
				return
			}
			continue
		}
		batch, aerr, err := acceptBatchFrom(rc, int(min(room, acceptBatch)))
		m.rr.held.Add(int64(len(batch)))
		if len(batch) > 0 {
			retry.reset()
			if !m.sendOrDone(func() { m.dispatchBatch(batch) }) {
				for _, fd := range batch {
					closeFD(fd)
				}
			}
		}
		if err != nil { // the wait fails only once stopAccepting closed ln
			return
		}
		if aerr != nil && !m.acceptFailed(m.rrErrLog, &retry, "accept failed, retrying", aerr) {
			return
		}
	}
}

// errHeldMax says why an accept loop waits.
var errHeldMax = errors.New("descriptor limit less the master's reserve reached")

// acceptBatchFrom waits until the listener rc has connections and accepts
// them, up to n. aerr is an accept error after which the caller pauses;
// err ends the wait (the listener was closed).
func acceptBatchFrom(rc syscall.RawConn, n int) (batch []int, aerr, err error) {
	err = rc.Read(func(fd uintptr) bool {
		for len(batch) < n {
			nfd, e := acceptConn(int(fd))
			switch e {
			case nil:
				batch = append(batch, nfd)
			case unix.EINTR, unix.ECONNABORTED:
			case unix.EAGAIN:
				return len(batch) > 0
			default:
				aerr = os.NewSyscallError("accept4", e)
				return true
			}
		}
		return true
	})
	return batch, aerr, err
}

// stopAccepting closes the acceptors and every connection not yet handed
// off; the master's listening sockets stay open.
func (m *Master) stopAccepting() {
	for key, ln := range m.rr.acceptors {
		_ = ln.Close()
		delete(m.rr.acceptors, key)
	}
	for _, h := range m.rr.queue {
		m.closeConn(h.fd)
	}
	m.rr.queue = nil
}

// dispatchBatch hands newly accepted connections to the ready workers,
// one message per worker for all of its share.
func (m *Master) dispatchBatch(fds []int) {
	hs := make([]*handoff, len(fds))
	for i, fd := range fds {
		hs[i] = &handoff{fd: fd}
	}
	m.handOut(hs, m.pick, m.queue)
}

// handOut hands each of hs to the worker pick returns, one message per
// worker for all of its share; one pick has no worker for goes to none.
// While the master stops, it closes them instead.
func (m *Master) handOut(hs []*handoff, pick func() *worker, none func(h *handoff)) {
	if m.stopping {
		for _, h := range hs {
			m.closeConn(h.fd)
		}
		return
	}
	byWorker := map[*worker][]*handoff{}
	var order []*worker
	for _, h := range hs {
		w := pick()
		if w == nil {
			none(h)
			continue
		}
		if byWorker[w] == nil {
			order = append(order, w)
		}
		byWorker[w] = append(byWorker[w], h)
		w.handed++
	}
	for _, w := range order {
		m.handTo(w, byWorker[w])
	}
}

// dispatch hands one connection to the next ready worker, or queues it
// until one is.
func (m *Master) dispatch(h *handoff) {
	if m.stopping {
		m.closeConn(h.fd)
		return
	}
	if h.tries > len(m.workers) {
		m.drop(h)
		return
	}
	w := m.pick()
	if w == nil {
		m.queue(h)
		return
	}
	w.handed++
	m.handTo(w, []*handoff{h})
}

// handTo sends hs to w, ipc.MaxHandoff connections a message (idle ones
// and new ones in messages of their own); those it cannot send go to
// another worker.
func (m *Master) handTo(w *worker, hs []*handoff) {
	for len(hs) > 0 {
		n := 1
		for n < min(len(hs), ipc.MaxHandoff) && hs[n].idle == hs[0].idle {
			n++
		}
		chunk := hs[:n]
		hs = hs[n:]
		first := m.rr.seq + 1
		fds := make([]int, n)
		for i, h := range chunk {
			h.tries++
			h.w = w
			fds[i] = h.fd
		}
		m.rr.seq += uint64(n)
		msg := ipc.Message{Type: ipc.Handoff, Seq: first, Idle: chunk[0].idle}
		if n > 1 {
			msg.N = n
		}
		if err := w.conn.SendFDs(msg, fds...); err != nil {
			m.kill(w, "cannot hand it a connection: "+err.Error())
			for _, h := range append(chunk, hs...) {
				h.w = nil
				m.dispatch(h)
			}
			return
		}
		for i, h := range chunk {
			m.rr.pending[first+uint64(i)] = h
		}
	}
}

// queue keeps a connection until a worker is ready for it, within maxQueued.
func (m *Master) queue(h *handoff) {
	if len(m.rr.queue) >= maxQueued {
		m.drop(h)
		return
	}
	m.rr.queue = append(m.rr.queue, h)
}

func (m *Master) drop(h *handoff) {
	if ok, n := m.rrDropLog.allow(m.now()); ok {
		m.log.Warn("dropped a connection: no worker took it", "queued", len(m.rr.queue), "tries", h.tries, "drops_not_logged", n)
	}
	m.closeConn(h.fd)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// pick chooses the worker for the next connection by the policy.
func (m *Master) pick() *worker {
	if m.cfg.RRPolicy == RRPolicyLeastConns {
		return m.leastConns()
	}
	return m.nextReady()
}

// readyWorkers returns the ready workers by slot.
func (m *Master) readyWorkers() []*worker {
	var ready []*worker
	for w := range m.workers {
		if w.state == Ready && w.killReason == "" {
			ready = append(ready, w)
		}
	}
	sort.Slice(ready, func(i, j int) bool { return ready[i].slot < ready[j].slot })
	return ready
}

// nextReady returns the ready worker after the last one used, by slot.
func (m *Master) nextReady() *worker {
	ready := m.readyWorkers()
	if len(ready) == 0 {
		return nil
	}
	for _, w := range ready {
		if w.slot >= m.rr.next {
			m.rr.next = w.slot + 1
			return w
		}
	}
	m.rr.next = ready[0].slot + 1
	return ready[0]
}

// leastConns returns the ready worker with the fewest open connections:
// those it last reported, plus those handed to it since.
func (m *Master) leastConns() *worker {
	return m.leastBy(m.readyWorkers(), (*worker).load)
}

// leastBy returns the worker of ready with the least load; ties go
// round, starting after the last one picked. nil when ready is empty.
func (m *Master) leastBy(ready []*worker, load func(*worker) int64) *worker {
	if len(ready) == 0 {
		return nil
	}
	start := 0
	for i, w := range ready {
		if w.slot >= m.rr.next {
			start = i
			break
		}
	}
	best := ready[start]
	for i := 1; i < len(ready); i++ {
		if w := ready[(start+i)%len(ready)]; load(w) < load(best) {
			best = w
		}
	}
	m.rr.next = best.slot + 1
	return best
}

// handoffReply settles the connections of a Handoff: served, or passed on.
// The worker's count of open connections replaces the estimate least-conns
// keeps between heartbeats.
func (m *Master) handoffReply(w *worker, msg ipc.Message) {
	defer func() {
		w.conns, w.handed = msg.Connections, 0
		for _, h := range m.rr.pending {
			if h.w == w {
				w.handed++
			}
		}
	}()
	refused := map[uint64]bool{}
	for _, seq := range msg.Refused {
		refused[seq] = true
	}
	all := msg.Err != "" && len(msg.Refused) == 0
	for i := 0; i < msg.Conns(); i++ {
		seq := msg.Seq + uint64(i)
		h, ok := m.rr.pending[seq]
		if !ok || h.w != w {
			w.log.Warn("answer for an unknown connection", "seq", seq)
			continue
		}
		delete(m.rr.pending, seq)
		if !all && !refused[seq] {
			m.closeConn(h.fd)
			continue
		}
		w.log.Debug("connection refused, passing it on", "why", msg.Err)
		h.w = nil
		m.dispatch(h)
	}
}

// redispatch passes on the connections w had not answered for when it ended.
func (m *Master) redispatch(w *worker) {
	for seq, h := range m.rr.pending {
		if h.w == w {
			delete(m.rr.pending, seq)
			h.w = nil
			m.dispatch(h)
		}
	}
}

// flushQueue hands the queued connections to the workers now ready.
func (m *Master) flushQueue() {
	queued := m.rr.queue
	m.rr.queue = nil
	for _, h := range queued {
		m.dispatch(&handoff{fd: h.fd, idle: h.idle})
	}
}
