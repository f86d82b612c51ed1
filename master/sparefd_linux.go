package master

import (
	"errors"
	"syscall"

	"golang.org/x/sys/unix"
)

// spareFD keeps one descriptor in reserve for the control socket. At the
// descriptor limit, with the table full of client connections, the
// master gives it up to accept a control connection, so an operator can
// still reach it (libuv keeps a reserve descriptor for the same reason).
// An eventfd: it needs no file system, as in a FROM scratch image.
type spareFD struct{ fd int }

func newSpareFD() *spareFD {
	s := &spareFD{fd: -1}
	s.refill()
	return s
}

// refill takes a descriptor back into reserve, if it has none and one is
// free.
func (s *spareFD) refill() {
	if s.fd >= 0 {
		return
	}
	if fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC); err == nil {
		s.fd = fd
	}
}

// take frees the reserve for the caller's next accept; it reports false
// if there was none.
func (s *spareFD) take() bool {
	if s.fd < 0 {
		return false
	}
	_ = unix.Close(s.fd)
	s.fd = -1
	return true
}

// release frees the reserve for good.
func (s *spareFD) release() { s.take() }

// isFdLimit reports whether err is a full descriptor table, the process's
// (EMFILE) or the system's (ENFILE).
func isFdLimit(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}
