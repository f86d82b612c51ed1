package httpcore

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// A listener is the loop's duplicate of a listening socket.
type listener struct {
	fd         int
	registered bool // in the epoll set
	exclusive  bool // registered with EPOLLEXCLUSIVE
	sinceRearm int  // accepts since the last registration
}

// listen duplicates and registers the listening sockets.
func (l *loop) listen(fds []int) error {
	for _, fd := range fds {
		nfd, err := dupListener(fd)
		if err != nil {
			return err
		}
		ln := &listener{fd: nfd}
		l.lns = append(l.lns, ln)
		if err := l.register(ln); err != nil {
			return err
		}
	}
	if l.gate == nil || len(l.lns) == 0 || l.gate.Baton() < 0 {
		return nil
	}
	nfd, err := dupListener(l.gate.Baton())
	if err != nil {
		return err
	}
	l.baton = &listener{fd: nfd}
	return l.register(l.baton)
}

// takeBaton makes the loop accept for a process that held: it registers
// the listeners again, and the kernel reports those with connections
// waiting at the next epoll_wait, and again until they are empty (the
// wake-up for them went to the process that held).
func (l *loop) takeBaton() {
	var b [8]byte
	_, _ = unix.Read(l.baton.fd, b[:])
	for _, ln := range l.lns {
		if ln.registered {
			l.rearm(ln)
		}
	}
}

// passBaton wakes another process to accept in this one's place.
func (l *loop) passBaton() {
	if l.baton != nil {
		b := [8]byte{1}
		_, _ = unix.Write(l.baton.fd, b[:])
	}
}

// unregisterAll takes the listeners and the baton out of the epoll set.
func (l *loop) unregisterAll() {
	for _, ln := range l.lns {
		l.unregister(ln)
	}
	if l.baton != nil {
		l.unregister(l.baton)
	}
}

func dupListener(fd int) (int, error) {
	nfd, err := rawfd.Dup(fd)
	if err != nil {
		return -1, err
	}
	if err := unix.SetNonblock(nfd, true); err != nil {
		_ = unix.Close(nfd)
		return -1, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return nfd, nil
}

// register adds ln to the epoll set, exclusively where the kernel can
// (Linux 4.5+), so one connection wakes one of the processes sharing it.
func (l *loop) register(ln *listener) error {
	err := l.p.add(ln.fd, evRead|evExclusive)
	ln.exclusive = err == nil
	if errors.Is(err, unix.EINVAL) {
		err = l.p.add(ln.fd, evRead)
	}
	ln.registered = err == nil
	ln.sinceRearm = 0
	return err
}

func (l *loop) unregister(ln *listener) {
	if ln.registered {
		_ = l.p.del(ln.fd) // needed: the socket stays open in other processes
		ln.registered = false
	}
}

// rearm re-adds an exclusive listener: the kernel wakes the epoll instance
// registered first, so re-adding moves this process to the back (nginx does
// the same).
func (l *loop) rearm(ln *listener) {
	l.unregister(ln)
	if err := l.register(ln); err != nil {
		l.log.Error("re-register listener", "error", err)
	}
}

func (l *loop) listener(fd int) *listener {
	for _, ln := range l.lns {
		if ln.fd == fd {
			return ln
		}
	}
	return nil
}

func (l *loop) closeListeners() {
	l.unregisterAll()
	for _, ln := range l.lns {
		_ = unix.Close(ln.fd)
	}
	l.lns = nil
	if l.baton != nil {
		_ = unix.Close(l.baton.fd)
		l.baton = nil
	}
}

// acceptConns accepts pending connections, at most maxAcceptsBatch, as
// long as the gate, if any, lets it.
func (l *loop) acceptConns(ln *listener) {
	resumed := l.resumed
	l.resumed = false
	l.acceptTried = l.now
	for i := 0; i < maxAcceptsBatch && ln.registered; i++ {
		if l.gate != nil {
			if d := l.gate.Hold(resumed); d > 0 {
				l.holdAccept(d)
				break
			}
			resumed = false
		}
		fd, _, err := unix.Accept4(ln.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			if l.acceptFailed(ln, err) {
				continue
			}
			break
		}
		if l.gate != nil {
			l.gate.Accepted()
		}
		ln.sinceRearm++
		if c := l.openConn(fd, false); c != nil {
			c.flags |= connAccepted
		}
	}
	if ln.registered && ln.exclusive && ln.sinceRearm >= rearmEvery {
		l.rearm(ln)
	}
}

// acceptFailed handles an accept4 error and reports whether to try again.
func (l *loop) acceptFailed(ln *listener, err error) bool {
	switch err {
	case unix.EAGAIN:
		return false
	case unix.EINTR, unix.ECONNABORTED, unix.EPROTO, unix.ENETDOWN, unix.ENOPROTOOPT,
		unix.EHOSTDOWN, unix.ENONET, unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EAFNOSUPPORT:
		return true // this connection is gone (accept(2) says to retry)
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		l.pauseAccept(err)
		return false
	}
	l.dropListener(ln, os.NewSyscallError("accept4", err))
	return false
}

// pauseAccept takes the listeners out of the epoll set for acceptBackoff:
// out of descriptors or memory, they would stay readable and spin the loop.
func (l *loop) pauseAccept(err error) {
	l.unregisterAll()
	l.holding = false
	l.acceptResume = l.now + int64(acceptBackoff)
	if l.acceptLogged == 0 || l.now-l.acceptLogged >= int64(time.Second) {
		l.acceptLogged = l.now
		l.log.Warn("accept paused", "error", os.NewSyscallError("accept4", err), "pause", acceptBackoff)
	}
}

// sweepAccept tries to accept on the listeners when the loop, sharing
// them with others under a gate, has not for acceptSweep: another process
// that stopped (SIGSTOP, a debugger) while it waited in epoll_wait takes
// the next wake-up with it, and the connection would wait in the queue
// for the next one.
func (l *loop) sweepAccept() {
	if l.gate == nil || l.acceptResume != 0 || l.draining || l.now-l.acceptTried < int64(acceptSweep) {
		return
	}
	for _, ln := range l.lns {
		if ln.registered {
			l.acceptConns(ln)
		}
	}
	l.acceptTried = l.now
}

// shed gives idle connections away while the AcceptPasser says this loop
// holds more than its share, asking it at most every shedEvery.
func (l *loop) shed() {
	if l.passer == nil || l.draining || l.now-l.shedTried < int64(shedEvery) {
		return
	}
	l.shedTried = l.now
	n := l.passer.Shed()
	for fd := 0; n > 0 && fd < len(l.conns); fd++ {
		c := l.conns[fd]
		if c == nil || !c.movable() {
			continue
		}
		l.detach(c)
		if !l.passer.Give(fd) {
			if c := l.adoptConn(fd, ConnInfo{Idle: true}); c != nil {
				c.flags |= connAccepted // still this loop's own: movable later
			}
			return
		}
		l.st.GivenAway++
		n--
	}
}

// holdAccept takes the listeners out of the epoll set for d, as the gate
// asked: the kernel then wakes the other processes on them instead.
func (l *loop) holdAccept(d time.Duration) {
	l.unregisterAll()
	l.passBaton()
	if l.acceptResume == 0 {
		l.holding = true
	}
	l.acceptResume = max(l.acceptResume, l.now+int64(d))
}

// resumeAccept re-registers the listeners when an accept pause is over.
func (l *loop) resumeAccept() {
	if l.acceptResume == 0 || l.draining {
		return
	}
	if l.now < l.acceptResume && !(l.holding && !l.gate.Holding()) {
		return
	}
	l.acceptResume = 0
	l.holding = false
	l.resumed = true
	for _, ln := range l.lns {
		if err := l.register(ln); err != nil {
			l.dropListener(ln, err)
		}
	}
	if l.baton != nil && len(l.lns) > 0 {
		if err := l.register(l.baton); err != nil {
			l.log.Error("re-register the accept baton", "error", err)
		}
	}
}

// dropListener gives up on a listener that fails for good. Without
// listeners the loop drains and Serve returns err.
func (l *loop) dropListener(ln *listener, err error) {
	l.log.Error("listener dropped", "error", err)
	l.unregister(ln)
	_ = unix.Close(ln.fd)
	for i, x := range l.lns {
		if x == ln {
			l.lns = append(l.lns[:i], l.lns[i+1:]...)
			break
		}
	}
	if len(l.lns) == 0 && !l.draining {
		l.fatal = fmt.Errorf("no listener left: %w", err)
		l.beginDrain()
	}
}

// adoptConn starts serving a connection given to ServeConn; nil if it
// cannot.
func (l *loop) adoptConn(fd int, info ConnInfo) *conn {
	if l.draining && !info.EvenDraining {
		closeConnFD(fd)
		return nil
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		l.log.Error("adopt connection", "error", os.NewSyscallError("fcntl O_NONBLOCK", err))
		closeConnFD(fd)
		return nil
	}
	c := l.openConn(fd, info.Idle)
	if c == nil {
		return nil
	}
	c.peer = info.Peer
	if !info.Idle && !info.Accepted.IsZero() {
		c.req.start = max(l.now-int64(max(time.Since(info.Accepted), 0)), 1) // 0 would mean idle
		l.setDeadline(c)
	}
	return c
}

func closeConnFD(fd int) { _ = unix.Close(fd) }

// openConn starts serving an accepted connection, or with idle one
// between requests that was served elsewhere until now; nil if it cannot.
func (l *loop) openConn(fd int, idle bool) *conn {
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // fails harmlessly on Unix sockets
	if err := l.p.add(fd, evRead); err != nil {
		l.log.Error("register connection", "error", err)
		_ = unix.Close(fd)
		return nil
	}
	c := &conn{fd: fd, events: evRead, timer: timerEntry{index: -1}}
	// The first request's head is due HeaderTimeout after accept (an idle
	// connection's next request, IdleTimeout after now). Loop time is from
	// the start of the iteration, which under load can be tens of ms
	// before this connection existed: read the clock (a vDSO call, far
	// cheaper than the accept and epoll_ctl before it).
	l.now = int64(time.Since(l.epoch))
	if !idle {
		c.req.start = l.now
		l.st.Accepted++
	}
	l.track(c)
	l.setDeadline(c)
	return c
}

// peerAddr returns the address of the peer of socket fd: "ip:port" over
// TCP; over a Unix socket the client's path, or "@" for a client socket
// with no name (what net/http reports).
func peerAddr(fd int) string {
	sa, err := unix.Getpeername(fd)
	if err != nil {
		return ""
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrUnix:
		return sa.Name
	}
	return ""
}
