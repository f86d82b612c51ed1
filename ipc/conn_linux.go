package ipc

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// maxFDs bounds the descriptors accepted with one frame; anything beyond
// what the message carries is closed and reported as an error.
const maxFDs = MaxHandoff

// Socketpair returns the two ends of a new SOCK_SEQPACKET socketpair, both
// close-on-exec. The master keeps one and hands the other to a worker
// through exec.Cmd.ExtraFiles (which clears close-on-exec in the child only).
func Socketpair() (a, b *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("socketpair", err)
	}
	return os.NewFile(uintptr(fds[0]), "ipc"), os.NewFile(uintptr(fds[1]), "ipc"), nil
}

// Conn is one end of the channel. Send is safe for concurrent use; Recv must
// be called from one goroutine at a time.
type Conn struct {
	uc      *net.UnixConn
	sendMu  sync.Mutex
	recvBuf []byte
	oobBuf  []byte
}

// NewConn wraps f, which must be a SOCK_SEQPACKET socket. The Conn owns a
// duplicate of f; the caller may close f afterwards.
func NewConn(f *os.File) (*Conn, error) {
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("ipc: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("ipc: %T is not a unix socket", c)
	}
	return &Conn{
		uc:      uc,
		recvBuf: make([]byte, headerLen+MaxBody+1),
		oobBuf:  make([]byte, unix.CmsgSpace(maxFDs*4)),
	}, nil
}

// Send writes m as one frame, passing files (their descriptors are
// duplicated into the peer; the caller still owns and closes them).
func (c *Conn) Send(m Message, files ...*os.File) error {
	fds, err := rawfd.All(files)
	if err != nil {
		return fmt.Errorf("ipc: send %v: %w", m.Type, err)
	}
	return c.SendFDs(m, fds...)
}

// SendFDs is Send for bare descriptors.
func (c *Conn) SendFDs(m Message, fds ...int) error {
	if want := m.fds(); len(fds) != want {
		return fmt.Errorf("ipc: send %v: %d fds, want %d", m.Type, len(fds), want)
	}
	frame, err := m.marshal()
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	n, oobn, err := c.uc.WriteMsgUnix(frame, oob, nil)
	if err != nil {
		return fmt.Errorf("ipc: send %v: %w", m.Type, err)
	}
	if n != len(frame) || oobn != len(oob) {
		return fmt.Errorf("ipc: send %v: short write %d/%d", m.Type, n, len(frame))
	}
	return nil
}

// Recv reads one frame. It returns io.EOF when the peer has gone away. Files
// come back only when the message type carries them, exactly as many as it
// carries, close-on-exec; any other descriptor that arrives is closed and
// the frame is reported as an error. The caller owns the returned files.
func (c *Conn) Recv() (Message, []*os.File, error) {
	m, fds, err := c.RecvFDs()
	var files []*os.File
	for _, fd := range fds {
		files = append(files, os.NewFile(uintptr(fd), "ipc-fd"))
	}
	return m, files, err
}

// RecvFDs is Recv with bare descriptors, which the caller owns.
func (c *Conn) RecvFDs() (Message, []int, error) {
	n, oobn, flags, _, err := c.uc.ReadMsgUnix(c.recvBuf, c.oobBuf)
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return Message{}, nil, ErrClosed
		}
		if errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) {
			return Message{}, nil, io.EOF
		}
		return Message{}, nil, fmt.Errorf("ipc: recv: %w", err)
	}
	fds, ferr := parseRights(c.oobBuf[:oobn])
	if n == 0 && oobn == 0 {
		return Message{}, nil, io.EOF
	}
	m, err := c.check(n, flags, len(fds), ferr)
	if err != nil {
		closeFDs(fds)
		return m, nil, &FrameError{err}
	}
	return m, fds, nil
}

// check validates a received frame. A frame error still returns the
// message when it could be decoded (a Handoff whose descriptors did not
// all arrive, say, so that the receiver can refuse it by Seq).
func (c *Conn) check(n, flags, nfds int, ferr error) (Message, error) {
	if flags&unix.MSG_TRUNC != 0 || n > headerLen+MaxBody {
		return Message{}, fmt.Errorf("ipc: recv: frame larger than %d bytes", headerLen+MaxBody)
	}
	m, err := unmarshal(c.recvBuf[:n])
	switch {
	case err != nil:
		return m, err
	case ferr != nil:
		return m, ferr
	case flags&unix.MSG_CTRUNC != 0:
		return m, errors.New("ipc: recv: control data truncated (too many fds, or none left to receive them)")
	}
	if want := m.fds(); nfds != want {
		return m, fmt.Errorf("ipc: recv %v: got %d fds, want %d", m.Type, nfds, want)
	}
	return m, nil
}

// parseRights extracts every SCM_RIGHTS descriptor from oob, so that none
// leaks even when the frame turns out to be bad.
func parseRights(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, os.NewSyscallError("parse control message", err)
	}
	var all []int
	var bad error
	for i := range msgs {
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			bad = fmt.Errorf("ipc: unexpected control message level=%d type=%d", msgs[i].Header.Level, msgs[i].Header.Type)
			continue
		}
		all = append(all, fds...)
	}
	if bad != nil {
		closeFDs(all)
		return nil, bad
	}
	return all, nil
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// FrameError reports a frame that was received but is not well formed (or
// carried the wrong descriptors). The channel itself is still usable.
type FrameError struct{ Err error }

func (e *FrameError) Error() string { return e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

// SetReadDeadline bounds the next Recv.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.uc.SetReadDeadline(t) }

// Close closes the connection; a Recv in progress returns ErrClosed.
func (c *Conn) Close() error { return c.uc.Close() }
