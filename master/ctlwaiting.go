package master

import (
	"net"
	"sync"
	"time"
)

// controlCutAge is how long a control client may wait without sending its
// request before, when every control slot is taken, it is cut short to
// make room. `clusterd ctl` sends its request as soon as it connects.
const controlCutAge = 100 * time.Millisecond

// waiting lists the control connections that have not sent their request
// yet, oldest first. Safe for concurrent use.
type waiting struct {
	mu    sync.Mutex
	conns []waiter
}

type waiter struct {
	c     *net.UnixConn
	since time.Time
}

func (w *waiting) add(c *net.UnixConn) {
	w.mu.Lock()
	w.conns = append(w.conns, waiter{c, time.Now()})
	w.mu.Unlock()
}

func (w *waiting) remove(c *net.UnixConn) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, x := range w.conns {
		if x.c == c {
			w.conns = append(w.conns[:i], w.conns[i+1:]...)
			return
		}
	}
}

// cutOldest ends the wait of the connection silent the longest, if it has
// waited since before: its read times out now, so it is answered "bad
// request" and closed, which frees its slot.
func (w *waiting) cutOldest(before time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.conns) == 0 || !w.conns[0].since.Before(before) {
		return
	}
	_ = w.conns[0].c.SetReadDeadline(time.Unix(1, 0))
	w.conns = w.conns[1:]
}

// awaitSlot takes a control slot when one frees up. Meanwhile, every
// quarter of controlCutAge, it cuts short the client that has been silent
// the longest, once that one has been silent for controlCutAge: a flood of
// clients that connect and say nothing cannot keep `clusterd ctl` out for
// long. It returns false if the master stops first.
func (m *Master) awaitSlot(slots chan<- struct{}, silent *waiting) bool {
	tick := time.NewTicker(controlCutAge / 4)
	defer tick.Stop()
	for {
		silent.cutOldest(time.Now().Add(-controlCutAge))
		select {
		case slots <- struct{}{}:
			return true
		case <-tick.C:
		case <-m.done:
			return false
		}
	}
}
