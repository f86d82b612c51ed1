package httpcore

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// harness drives one connection of a real loop by hand, without running the
// loop: the test writes input into the other end of a socketpair and calls
// the loop's handlers itself, so every step is deterministic. Time stands
// still unless the test moves it.
type harness struct {
	t       testing.TB
	l       *loop
	c       *conn
	peer    int
	out     []byte
	async   []*ResponseWriter // asynchronous responses not ended yet
	methods []string          // of the requests served, in order
	noRead  bool              // the client does not read
}

func newHarness(t testing.TB, cfg Config, h Handler) *harness {
	t.Helper()
	s := NewServer(cfg, h)
	l, err := newLoop(s)
	if err != nil {
		t.Fatal(err)
	}
	l.date.line = []byte("Date: fixed\r\n")
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	l.openConn(fds[0], false)
	return &harness{t: t, l: l, c: l.conns[fds[0]], peer: fds[1]}
}

// asyncHandler answers like echo, but asynchronously for paths starting
// with /async; the harness ends those responses when the test says.
func (h *harness) asyncHandler() Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		h.methods = append(h.methods, strings.Clone(r.Method()))
		echo(w, r)
		if len(r.Path()) >= 6 && r.Path()[:6] == "/async" {
			w.Async()
			h.async = append(h.async, w)
		}
	})
}

func (h *harness) close() {
	h.l.forceClose()
	h.l.p.close()
	_ = unix.Close(h.peer)
}

// feed sends data to the server and runs the loop until nothing moves.
func (h *harness) feed(data []byte) {
	for len(data) > 0 {
		n, err := unix.Write(h.peer, data)
		if err == unix.EAGAIN {
			h.run()
			continue
		}
		if err != nil {
			return // the server closed
		}
		data = data[n:]
		h.run()
	}
}

// shutWrite closes the client's sending side.
func (h *harness) shutWrite() {
	_ = unix.Shutdown(h.peer, unix.SHUT_WR)
	h.run()
}

// endAsync ends the oldest pending asynchronous response.
func (h *harness) endAsync() bool {
	if len(h.async) == 0 {
		return false
	}
	w := h.async[0]
	h.async = h.async[1:]
	w.End()
	h.run()
	return true
}

// run handles what the loop would: readable and writable events, posted
// tasks, and reading the client side, until nothing changes.
func (h *harness) run() {
	buf := make([]byte, 64<<10)
	for range 100_000 {
		before := h.fingerprint()
		h.l.runTasks()
		if c := h.c; c.state != connClosed {
			if ev := readiness(c.fd) & (c.events | evError); ev != 0 {
				h.l.onConnEvent(c, ev)
			}
		}
		for !h.noRead {
			n, _ := unix.Read(h.peer, buf)
			if n <= 0 {
				break
			}
			h.out = append(h.out, buf[:n]...)
		}
		if h.fingerprint() == before {
			return
		}
	}
	h.t.Fatal("harness: the connection never settles")
}

type fingerprint struct {
	out, in, pending, tasks, unread, async int
	state                                  connState
	flags                                  connFlags
	events                                 uint32
}

func (h *harness) fingerprint() fingerprint {
	h.l.s.mu.Lock()
	tasks := len(h.l.s.tasks)
	h.l.s.mu.Unlock()
	c := h.c
	unread := 0
	if c.state != connClosed {
		unread, _ = unix.IoctlGetInt(c.fd, unix.SIOCINQ)
	}
	return fingerprint{len(h.out), len(c.in), c.pendingOut(), tasks, unread, len(h.async), c.state, c.flags, c.events}
}

// advance moves loop time forward by d and fires due timers.
func (h *harness) advance(d time.Duration) {
	h.l.now += int64(d)
	h.l.runTimers()
	h.run()
}

// closed reports whether the server has closed the connection.
func (h *harness) closed() bool { return h.c.state == connClosed }

func readiness(fd int) uint32 {
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN | unix.POLLOUT | unix.POLLRDHUP}}
	if n, err := unix.Poll(pfd, 0); err != nil || n == 0 {
		return 0
	}
	var ev uint32
	if pfd[0].Revents&unix.POLLIN != 0 {
		ev |= evRead
	}
	if pfd[0].Revents&unix.POLLOUT != 0 {
		ev |= evWrite
	}
	if pfd[0].Revents&unix.POLLRDHUP != 0 {
		ev |= evHangup
	}
	if pfd[0].Revents&(unix.POLLERR|unix.POLLHUP) != 0 {
		ev |= evError
	}
	return ev
}
