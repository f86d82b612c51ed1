package worker

import (
	"os"
	"strconv"

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
	for _, k := range []string{ipc.EnvBoardFD, ipc.EnvBoardBatonFD, ipc.EnvBoardSlot, ipc.EnvBoardPass} {
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
	ps := &passer{ch: make(chan int, passQueue), conn: conn, log: log, done: make(chan struct{})}
	go ps.run()
	return scoreboard.NewPassingGate(b, slot, ps.take), ps
}

// passQueue bounds the connections waiting to be passed to the master;
// beyond it the worker serves them itself.
const passQueue = 256

// passer sends the connections the event loop passes on to the master, in
// batches of up to ipc.MaxHandoff, from a goroutine of its own (the loop
// must not block on the channel).
type passer struct {
	ch    chan int
	conn  *ipc.Conn
	log   hclog.Logger
	serve func(fd int) error // serves a connection the master did not take
	done  chan struct{}
}

// take queues connection fd; false when the queue is full.
func (ps *passer) take(fd int) bool {
	select {
	case ps.ch <- fd:
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
		msg := ipc.Message{Type: ipc.Pass}
		if len(fds) > 1 {
			msg.N = len(fds)
		}
		err := ps.conn.SendFDs(msg, fds...)
		if err != nil {
			ps.log.Warn("cannot pass connections to the master: serving them here", "error", err)
		}
		for _, fd := range fds {
			switch {
			case err == nil, ps.serve == nil:
				_ = unix.Close(fd) // the master has its copy, or nobody serves it
			default:
				_ = ps.serve(fd) // which closes it if it cannot
			}
		}
	}
}

// stop ends the passer once the event loop, which passes connections to
// it, has ended.
func (ps *passer) stop() {
	if ps != nil {
		close(ps.ch)
		<-ps.done
	}
}
