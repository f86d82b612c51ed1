package httpcore

import (
	"encoding/binary"
	"errors"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Epoll interest bits. Connections are level-triggered: a conn is read once
// per wakeup, and the kernel reports it again while input is left.
const (
	evRead      = unix.EPOLLIN
	evWrite     = unix.EPOLLOUT
	evError     = unix.EPOLLERR | unix.EPOLLHUP
	evHangup    = unix.EPOLLRDHUP // the peer shut down its side
	evExclusive = unix.EPOLLEXCLUSIVE
)

// pollEvents is how many events one epoll_wait returns at most.
const pollEvents = 256

// poller is an epoll instance plus an eventfd that wakes it up.
type poller struct {
	fd     int             // epoll
	park   syscall.RawConn // a duplicate of fd in the Go runtime's netpoller
	parkF  *os.File
	parkFn func(uintptr) bool // polls for park.Read, into n and err
	// parkFirst skips parkFn's first poll, made by wait just before.
	parkFirst bool
	// parks is set with one processor (GOMAXPROCS 1): wait parks the
	// goroutine instead of blocking the thread, which holds the only
	// processor while it blocks.
	parks  bool
	n      int
	err    error
	wakeFD int // eventfd, registered for reading
	events []unix.EpollEvent
	ev     unix.EpollEvent // scratch for epoll_ctl
	buf    [8]byte         // scratch for the eventfd counter
}

func newPoller() (*poller, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	p := &poller{fd: fd, wakeFD: -1, events: make([]unix.EpollEvent, pollEvents)}
	p.wakeFD, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		p.close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := p.add(p.wakeFD, evRead); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

// openPark registers a duplicate of the epoll descriptor with the Go
// runtime's netpoller, so that wait can park the loop goroutine instead of
// blocking its thread, and sets parks. It is for a loop on one processor.
func (p *poller) openPark() error {
	d, err := unix.FcntlInt(uintptr(p.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	if err := unix.SetNonblock(d, true); err != nil {
		_ = unix.Close(d)
		return os.NewSyscallError("fcntl", err)
	}
	p.parkF = os.NewFile(uintptr(d), "epoll")
	p.park, err = p.parkF.SyscallConn()
	p.parkFn = func(uintptr) bool {
		if p.parkFirst {
			p.parkFirst = false // wait has just looked
			return false
		}
		p.n, p.err = p.poll()
		return p.n != 0 || p.err != nil && p.err != unix.EINTR
	}
	p.parks = err == nil
	return err
}

func (p *poller) close() {
	if p.parkF != nil {
		_ = p.parkF.Close()
	}
	if p.wakeFD >= 0 {
		_ = unix.Close(p.wakeFD)
	}
	_ = unix.Close(p.fd)
}

func (p *poller) ctl(op, fd int, events uint32) error {
	p.ev = unix.EpollEvent{Events: events, Fd: int32(fd)}
	return unix.EpollCtl(p.fd, op, fd, &p.ev)
}

func (p *poller) add(fd int, events uint32) error {
	return os.NewSyscallError("epoll_ctl add", p.ctl(unix.EPOLL_CTL_ADD, fd, events))
}

func (p *poller) mod(fd int, events uint32) error {
	return os.NewSyscallError("epoll_ctl mod", p.ctl(unix.EPOLL_CTL_MOD, fd, events))
}

func (p *poller) del(fd int) error {
	return os.NewSyscallError("epoll_ctl del", p.ctl(unix.EPOLL_CTL_DEL, fd, 0))
}

// wait waits for at most msec milliseconds (-1: forever) and returns the
// number of events in p.events. EINTR counts as a wakeup with no events.
// With one processor (parks) it waits by parking the goroutine in the
// runtime's netpoller, not by blocking its thread in epoll_wait, so that
// goroutines woken meanwhile (a handler's I/O, a timer) run while the loop
// sleeps.
func (p *poller) wait(msec int) (int, error) {
	if !p.parks {
		return p.block(msec)
	}
	n, err := p.poll()
	if n == 0 && err == nil && msec != 0 {
		deadline := time.Time{}
		if msec > 0 {
			deadline = time.Now().Add(time.Duration(msec) * time.Millisecond)
		}
		_ = p.parkF.SetReadDeadline(deadline)
		p.n, p.err, p.parkFirst = 0, nil, true
		if rerr := p.park.Read(p.parkFn); rerr != nil && !errors.Is(rerr, os.ErrDeadlineExceeded) {
			return 0, os.NewSyscallError("epoll park", rerr)
		}
		n, err = p.n, p.err
	}
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}

// block is wait on more than one processor: epoll_wait blocks the loop's
// thread, the runtime hands its processor to other goroutines meanwhile,
// and the thread wakes straight from the kernel. (Parking would hand
// every wake-up through the runtime's poller and another thread.)
func (p *poller) block(msec int) (int, error) {
	n, err := unix.EpollWait(p.fd, p.events, msec)
	if errors.Is(err, unix.EINTR) {
		return 0, nil
	}
	if err != nil {
		return 0, os.NewSyscallError("epoll_wait", err)
	}
	return n, nil
}

// poll returns the events ready now, without waiting: epoll_wait with a
// zero timeout, which never blocks, so it skips the scheduler's system-call
// bookkeeping (see readNB).
func (p *poller) poll() (int, error) {
	n, _, e := unix.RawSyscall6(unix.SYS_EPOLL_PWAIT, uintptr(p.fd),
		uintptr(unsafe.Pointer(&p.events[0])), uintptr(len(p.events)), 0, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// drainWake resets the eventfd counter after a wakeup.
func (p *poller) drainWake() {
	_, _ = unix.Read(p.wakeFD, p.buf[:])
}

// wakeEventfd wakes the poller that owns the eventfd fd. A full counter
// (EAGAIN) means a wakeup is pending anyway.
func wakeEventfd(fd int) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	_, _ = unix.Write(fd, b[:])
}
