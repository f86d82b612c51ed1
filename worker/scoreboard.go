package worker

import (
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/scoreboard"
	"github.com/clusterd/clusterd/ipc"
)

// openBoard maps the scoreboard the master passed (shared and reuseport
// scheduling) and returns this worker's gate on it, and under reuseport
// the passer that sends the connections the gate passes to the master
// through conn; nil without a board. The mapping lasts as long as the
// process.
func openBoard(log hclog.Logger, conn *ipc.Conn) (httpcore.AcceptGate, *passer) {
	fdEnv, batonEnv, slotEnv, passEnv := os.Getenv(ipc.EnvBoardFD), os.Getenv(ipc.EnvBoardBatonFD), os.Getenv(ipc.EnvBoardSlot), os.Getenv(ipc.EnvBoardPass)
	answers := os.Getenv(ipc.EnvPassReply) == "1"
	for _, k := range []string{ipc.EnvBoardFD, ipc.EnvBoardBatonFD, ipc.EnvBoardSlot, ipc.EnvBoardPass, ipc.EnvPassReply} {
		_ = os.Unsetenv(k)
	}
	if fdEnv == "" {
		return nil, nil
	}
	fd, err1 := strconv.Atoi(fdEnv)
	baton, err2 := strconv.Atoi(batonEnv)
	slot, err3 := strconv.Atoi(slotEnv)
	if err1 != nil || err2 != nil || err3 != nil || fd < 3 || baton < 3 || slot < 0 || slot >= scoreboard.Slots {
		log.Warn("bad scoreboard from master", "fd", fdEnv, "baton", batonEnv, "slot", slotEnv)
		return nil, nil
	}
	unix.CloseOnExec(baton) // kept open: the event loops duplicate it
	f := os.NewFile(uintptr(fd), "scoreboard")
	b, err := scoreboard.Open(f)
	_ = f.Close()
	if err != nil {
		log.Warn("no scoreboard", "error", err)
		return nil, nil
	}
	if passEnv != "1" {
		return scoreboard.NewGate(b, slot, baton), nil
	}
	ps := newPasser(conn, log, answers)
	go ps.run()
	return scoreboard.NewPassingGate(b, slot, ps.take), ps
}

// passQueue bounds the connections waiting to be passed to the master or
// for its answer; beyond it the worker serves them itself.
const passQueue = 256

// passer sends the connections the event loop passes on to the master, in
// batches of up to ipc.MaxHandoff, from a goroutine of its own (the loop
// must not block on the channel). When the master answers (ipc.PassReply)
// the passer keeps its copies of a batch until then: the master may not
// have received them (at its descriptor limit), and then the worker
// serves them again.
type passer struct {
	ch      chan int
	conn    *ipc.Conn
	log     hclog.Logger
	serve   func(fd int) error // serves a connection the master did not take
	done    chan struct{}
	answers bool // the master answers every numbered Pass (ipc.EnvPassReply)

	held atomic.Int64 // connections queued or awaiting an answer

	mu      sync.Mutex
	seq     uint64           // the last Pass numbered
	pending map[uint64][]int // Passes sent and not answered: their connections
}

func newPasser(conn *ipc.Conn, log hclog.Logger, answers bool) *passer {
	return &passer{ch: make(chan int, passQueue), conn: conn, log: log, done: make(chan struct{}),
		answers: answers, pending: map[uint64][]int{}}
}

// take queues connection fd; false when the queue is full.
func (ps *passer) take(fd int) bool {
	if ps.held.Load() >= passQueue {
		return false
	}
	select {
	case ps.ch <- fd:
		ps.held.Add(1)
		return true
	default:
		return false
	}
}

func (ps *passer) run() {
	defer close(ps.done)
	fds := make([]int, 0, ipc.MaxHandoff)
	for fd := range ps.ch {
		fds = append(fds[:0], fd)
	batch:
		for len(fds) < ipc.MaxHandoff {
			select {
			case fd, ok := <-ps.ch:
				if !ok {
					break batch
				}
				fds = append(fds, fd)
			default:
				break batch
			}
		}
		ps.pass(fds)
	}
}

// pass sends one batch to the master.
func (ps *passer) pass(fds []int) {
	msg := ipc.Message{Type: ipc.Pass}
	if len(fds) > 1 {
		msg.N = len(fds)
	}
	if ps.answers { // numbered before it is sent: the answer may come at once
		ps.mu.Lock()
		ps.seq++
		msg.Seq = ps.seq
		ps.pending[msg.Seq] = append([]int(nil), fds...)
		ps.mu.Unlock()
	}
	if err := ps.conn.SendFDs(msg, fds...); err != nil {
		ps.log.Warn("cannot pass connections to the master: serving them here", "error", err)
		if ps.answers {
			ps.mu.Lock()
			delete(ps.pending, msg.Seq)
			ps.mu.Unlock()
		}
		ps.serveAgain(fds)
		return
	}
	if !ps.answers {
		ps.closeAll(fds) // the master has its copy
	}
}

// settle ends Pass msg.Seq as the master's answer msg says: its
// connections are closed here if the master took them, else served again.
func (ps *passer) settle(msg ipc.Message) {
	ps.mu.Lock()
	fds, ok := ps.pending[msg.Seq]
	delete(ps.pending, msg.Seq)
	ps.mu.Unlock()
	switch {
	case !ok:
		ps.log.Debug("answer for an unknown pass (the worker is exiting?)", "seq", msg.Seq)
	case msg.Err != "":
		ps.log.Debug("the master did not take the connections passed: serving them here", "seq", msg.Seq, "error", msg.Err)
		ps.serveAgain(fds)
	default:
		ps.closeAll(fds)
	}
}

// serveAgain serves connections the master did not take.
func (ps *passer) serveAgain(fds []int) {
	for _, fd := range fds {
		if ps.serve == nil {
			_ = unix.Close(fd) // nobody serves it
		} else {
			_ = ps.serve(fd) // which closes it if it cannot
		}
	}
	ps.held.Add(-int64(len(fds)))
}

func (ps *passer) closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
	ps.held.Add(-int64(len(fds)))
}

// stop ends the passer once the event loop, which passes connections to
// it, has ended; the connections of Passes not answered by then are
// closed (the worker exits).
func (ps *passer) stop() {
	if ps == nil {
		return
	}
	close(ps.ch)
	<-ps.done
	ps.mu.Lock()
	pending := ps.pending
	ps.pending = map[uint64][]int{}
	ps.mu.Unlock()
	for _, fds := range pending {
		ps.closeAll(fds)
	}
}
