package master

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// SocketOptions apply to every listener.
type SocketOptions struct {
	// Backlog is the accept queue length. 0: DefaultBacklog for the
	// sockets the master creates, while inherited ones keep theirs.
	Backlog int
	// Mode is the permission of Unix socket files; default 0660.
	Mode os.FileMode
	// TCPDeferAccept: TCP listeners hand a connection over only once its
	// first bytes arrived, or after this long (TCP_DEFER_ACCEPT); 0: off.
	TCPDeferAccept time.Duration
	// TCPFastOpen is the TCP_FASTOPEN queue length of TCP listeners; 0: off.
	TCPFastOpen int
	// Owner, when set, owns the Unix socket files (the user and group the
	// workers run as, say); by default the master's user does. A stale
	// socket of this owner's is replaced like one of the master's.
	Owner *SocketOwner
}

// SocketOwner is the owner and group of a Unix socket file.
type SocketOwner struct{ UID, GID int }

// DefaultSocketMode is the permission of Unix socket files: the owner and
// its group (a reverse proxy's, say) may connect.
const DefaultSocketMode os.FileMode = 0o660

func (o SocketOptions) backlog() int {
	if o.Backlog > 0 {
		return o.Backlog
	}
	return DefaultBacklog
}

// applyTCP sets the TCP listen options on the socket fd.
func (o SocketOptions) applyTCP(fd int) error {
	if o.TCPDeferAccept > 0 {
		secs := int(math.Ceil(o.TCPDeferAccept.Seconds()))
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, secs); err != nil {
			return os.NewSyscallError("setsockopt TCP_DEFER_ACCEPT", err)
		}
	}
	if o.TCPFastOpen > 0 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN, o.TCPFastOpen); err != nil {
			return os.NewSyscallError("setsockopt TCP_FASTOPEN", err)
		}
	}
	return nil
}

// relisten sets the accept queue length of a listening socket: listen(2)
// on a socket that already listens only changes its backlog.
func relisten(f *os.File, backlog int) error {
	fd, err := rawfd.Of(f)
	if err != nil {
		return err
	}
	if err := unix.Listen(fd, backlog); err != nil {
		return os.NewSyscallError("listen", err)
	}
	return nil
}

// bindTCP creates a listening TCP socket with Go's address handling (an
// unspecified host gets a dual-stack IPv6 socket where the kernel has
// one) and returns a descriptor of it that no Go poller watches.
func bindTCP(addr string, o SocketOptions) (*os.File, string, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = o.applyTCP(int(fd)) })
		return errors.Join(err, serr)
	}}
	// Plain TCP, as nginx and Node listen: the TCP options above are
	// TCP's, and an MPTCP listener would accept them only on new kernels.
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, "", err
	}
	defer ln.Close()
	f, err := unpolledFile(ln)
	if err == nil {
		err = relisten(f, o.backlog())
		if err != nil {
			_ = f.Close()
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("listen tcp %s: %w", addr, err)
	}
	return f, ln.Addr().String(), nil
}

// unpolledFile returns a descriptor of ln's socket in a file no Go poller
// watches, as the master holds its listening sockets for the workers. A
// file of a non-blocking socket joins the poller, and the poller's thread
// would then wake at every connection the workers accept. The socket is
// made blocking for the moment (no one else uses it yet; the workers make
// it non-blocking again, a flag the duplicates share).
func unpolledFile(ln net.Listener) (*os.File, error) {
	sc, err := ln.(syscall.Conn).SyscallConn()
	if err != nil {
		return nil, err
	}
	nfd, derr := -1, error(nil)
	if err := sc.Control(func(fd uintptr) { nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", derr)
	}
	if err := unix.SetNonblock(nfd, false); err != nil {
		_ = unix.Close(nfd)
		return nil, os.NewSyscallError("fcntl O_NONBLOCK", err)
	}
	return os.NewFile(uintptr(nfd), "tcp:"+ln.Addr().String()), nil
}

// socketFile identifies the socket file the master created, so that it
// removes that file and not one put in its place since. Inode numbers are
// reused at once on some file systems (tmpfs), so the change time, which
// bind, chown and chmod set, is compared too.
type socketFile struct {
	path     string
	dev, ino uint64
	ctime    unix.Timespec
}

// bindUnix creates a listening Unix socket at path ("@name": in the
// abstract namespace, with no file). A file in the way is replaced only
// when it is a socket of this user's that no one listens on; the directory
// must be one that no other user can change. The file gets mode o.Mode
// before the socket listens, so no one connects under a looser mode.
func bindUnix(path string, o SocketOptions) (*os.File, *socketFile, error) {
	abstract := path[0] == '@'
	if !abstract {
		if err := checkSocketPath(path, o.Owner); err != nil {
			return nil, nil, err
		}
	}
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socket", err)
	}
	var sf *socketFile
	err = unix.Bind(fd, &unix.SockaddrUnix{Name: path})
	if errors.Is(err, unix.EADDRINUSE) && abstract {
		err = fmt.Errorf("abstract socket %s is in use by another process", path)
	} else if err != nil {
		err = fmt.Errorf("bind %s: %w", path, err)
	} else if !abstract {
		sf, err = ownSocketFile(path, o.Mode, o.Owner)
	}
	if err == nil {
		err = os.NewSyscallError("listen", unix.Listen(fd, o.backlog()))
	}
	if err != nil {
		_ = unix.Close(fd)
		sf.remove()
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), "unix:"+path), sf, nil
}

// ownSocketFile sets the owner (if given) and mode of the socket file just
// bound at path, and records its identity.
func ownSocketFile(path string, mode os.FileMode, owner *SocketOwner) (*socketFile, error) {
	if mode == 0 {
		mode = DefaultSocketMode
	}
	var err error
	if owner != nil {
		err = os.Lchown(path, owner.UID, owner.GID)
	}
	if err == nil {
		err = os.Chmod(path, mode.Perm())
	}
	var st unix.Stat_t
	if err == nil {
		err = os.NewSyscallError("lstat "+path, unix.Lstat(path, &st))
	}
	if err != nil {
		_ = os.Remove(path) // just bound, in a directory no one else may change
		return nil, err
	}
	return &socketFile{path: path, dev: st.Dev, ino: st.Ino, ctime: st.Ctim}, nil
}

// remove deletes the socket file if it is still the one the master made.
func (sf *socketFile) remove() {
	if sf == nil {
		return
	}
	var st unix.Stat_t
	if unix.Lstat(sf.path, &st) == nil && st.Dev == sf.dev && st.Ino == sf.ino && st.Ctim == sf.ctime {
		_ = os.Remove(sf.path)
	}
}

// checkSocketPath refuses a path the master cannot own safely and removes
// a stale socket left there by a master that died.
func checkSocketPath(path string, owner *SocketOwner) error {
	if err := checkListenDir(filepath.Dir(path)); err != nil {
		return err
	}
	var st unix.Stat_t
	err := unix.Lstat(path, &st)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case err != nil:
		return os.NewSyscallError("lstat "+path, err)
	case st.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return fmt.Errorf("%s exists and is not a socket; not replacing it", path)
	case int(st.Uid) != os.Geteuid() && (owner == nil || int(st.Uid) != owner.UID):
		return fmt.Errorf("socket %s belongs to uid %d, not to this user (uid %d); not replacing it", path, st.Uid, os.Geteuid())
	}
	if err := probeSocket(path); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	return nil
}

// checkListenDir refuses a directory where another user could replace the
// socket file: one owned by someone other than this user or root, or one
// anyone may write to without the sticky bit.
func checkListenDir(dir string) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("socket directory: %w", os.NewSyscallError("stat "+dir, err))
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("socket directory %s is not a directory", dir)
	case int(st.Uid) != os.Geteuid() && st.Uid != 0:
		return fmt.Errorf("socket directory %s belongs to uid %d, not to this user (uid %d) or root; another user could replace the socket", dir, st.Uid, os.Geteuid())
	case st.Mode&unix.S_IWOTH != 0 && st.Mode&unix.S_ISVTX == 0:
		return fmt.Errorf("socket directory %s is writable by every user and not sticky; another user could replace the socket", dir)
	}
	return nil
}

// probeSocket connects to the socket file at path: a server answering
// there (or one too busy to answer) means the path is in use.
func probeSocket(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrUnix{Name: path})
	switch {
	case errors.Is(err, unix.ECONNREFUSED), errors.Is(err, unix.ENOENT):
		return nil // stale: no one listens
	case err == nil, errors.Is(err, unix.EAGAIN):
		return fmt.Errorf("a server is listening on %s; not replacing it", path)
	}
	return fmt.Errorf("cannot tell whether %s is in use: %w", path, os.NewSyscallError("connect", err))
}

// checkInherited makes sure fd, inherited from a parent or the service
// manager, is a listening stream socket, and returns its form and address.
// It works on the bare number: fd may not be a socket at all.
func checkInherited(fd int) (form string, addr string, err error) {
	typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
	switch {
	case errors.Is(err, unix.EBADF):
		return "", "", errors.New("not an open descriptor")
	case errors.Is(err, unix.ENOTSOCK):
		return "", "", errors.New("not a socket")
	case err != nil:
		return "", "", os.NewSyscallError("getsockopt SO_TYPE", err)
	case typ != unix.SOCK_STREAM:
		return "", "", fmt.Errorf("a %s socket, not a stream socket", sockType(typ))
	}
	if on, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || on == 0 {
		return "", "", errors.New("a stream socket that is not listening")
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return "", "", os.NewSyscallError("getsockname", err)
	}
	form, addr = sockaddrString(sa)
	if form == "" {
		return "", "", errors.New("not a TCP or Unix socket")
	}
	return form, addr, nil
}

func sockType(typ int) string {
	switch typ {
	case unix.SOCK_DGRAM:
		return "datagram (SOCK_DGRAM, e.g. UDP)"
	case unix.SOCK_SEQPACKET:
		return "SOCK_SEQPACKET"
	case unix.SOCK_RAW:
		return "raw"
	}
	return fmt.Sprintf("type %d", typ)
}

// sockaddrString returns the form (tcp, unix or abstract) and the text of
// a socket address.
func sockaddrString(sa unix.Sockaddr) (form, addr string) {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return FormTCP, netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrInet6:
		return FormTCP, netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)).String()
	case *unix.SockaddrUnix:
		if len(sa.Name) > 0 && sa.Name[0] == '@' {
			return FormAbstract, sa.Name
		}
		return FormUnix, sa.Name
	}
	return "", ""
}
