// Package rawfd is the one way clusterd takes a file descriptor out of an
// *os.File. (*os.File).Fd must not be used: it switches the descriptor to
// blocking mode, and on a listening socket shared between processes that
// flag is shared too, so one blocking accept would stall every worker's
// event loop. These functions leave the blocking mode as it is.
package rawfd

import (
	"os"

	"golang.org/x/sys/unix"
)

// Of returns f's descriptor. It stays f's: it is valid until f is closed.
func Of(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	if err := rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, err
	}
	return fd, nil
}

// All returns the descriptors of files, as Of does.
func All(files []*os.File) ([]int, error) {
	out := make([]int, len(files))
	for i, f := range files {
		fd, err := Of(f)
		if err != nil {
			return nil, err
		}
		out[i] = fd
	}
	return out, nil
}

// Dup returns a close-on-exec duplicate of fd, which the caller owns. It
// shares fd's open file description, blocking mode included.
func Dup(fd int) (int, error) {
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return nfd, nil
}

// DupFile returns a close-on-exec duplicate of f's descriptor, which the
// caller owns; f stays open and the caller's.
func DupFile(f *os.File) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(s uintptr) { nfd, derr = Dup(int(s)) }); err != nil {
		return -1, err
	}
	return nfd, derr
}
