package tlsconn

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
)

// A switchConn is the net.Conn under a tls.Conn. During the handshake it is
// the client's socket. Once the loop serves the connection (loop is set) it
// is a pair of buffers the loop fills and empties: Read returns the
// ciphertext the loop read, then errWouldBlock, which crypto/tls takes as a
// passing error (as a deadline), so that a later Read resumes where it
// stopped; Write appends to out. After a Hijack it is the hijacked socket.
type switchConn struct {
	net.Conn
	loop bool
	in   []byte // ciphertext not yet taken by crypto/tls
	out  []byte // ciphertext written by crypto/tls
}

// errWouldBlock ends a Read of a switchConn with no ciphertext left.
var errWouldBlock error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "tlsconn: no more input" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

func (c *switchConn) Read(p []byte) (int, error) {
	if !c.loop {
		return c.Conn.Read(p)
	}
	if len(c.in) == 0 {
		return 0, errWouldBlock
	}
	n := copy(p, c.in)
	c.in = c.in[n:]
	return n, nil
}

func (c *switchConn) Write(p []byte) (int, error) {
	if !c.loop {
		return c.Conn.Write(p)
	}
	c.out = append(c.out, p...)
	return len(p), nil
}

func (c *switchConn) Close() error {
	if c.loop {
		return nil // the loop closes the socket
	}
	return c.Conn.Close()
}

func (c *switchConn) SetDeadline(t time.Time) error {
	if c.loop {
		return nil
	}
	return c.Conn.SetDeadline(t)
}

func (c *switchConn) SetReadDeadline(t time.Time) error {
	if c.loop {
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *switchConn) SetWriteDeadline(t time.Time) error {
	if c.loop {
		return nil
	}
	return c.Conn.SetWriteDeadline(t)
}

// tlsCodec is the httpcore.Codec of an HTTP/1.1 connection whose handshake
// is done: the loop reads and writes the client's socket, and crypto/tls
// decrypts and encrypts in between, on the loop's goroutine.
type tlsCodec struct {
	tc      *tls.Conn
	sc      *switchConn
	pending []byte // written by crypto/tls while decoding (a KeyUpdate reply); sent with the next output
}

// decodeChunk is the least room Decode gives crypto/tls for a record.
const decodeChunk = 4 << 10

func (k *tlsCodec) Decode(dst, in []byte) ([]byte, error) {
	k.sc.in = in
	k.sc.out = k.pending
	defer func() { k.sc.in, k.pending, k.sc.out = nil, k.sc.out, nil }()
	for {
		if cap(dst)-len(dst) < decodeChunk {
			dst = slices.Grow(dst, 4*decodeChunk)
		}
		n, err := k.tc.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err != nil {
			if err == errWouldBlock {
				err = nil
			}
			return dst, err
		}
	}
}

func (k *tlsCodec) Encode(dst, p []byte) ([]byte, error) {
	k.sc.out = append(dst, k.pending...)
	k.pending = nil
	_, err := k.tc.Write(p)
	dst = k.sc.out
	k.sc.out = nil
	return dst, err
}

func (k *tlsCodec) End(dst []byte) []byte {
	k.sc.out = append(dst, k.pending...)
	k.pending = nil
	_ = k.tc.CloseWrite() // a close_notify alert
	dst = k.sc.out
	k.sc.out = nil
	return dst
}

func (k *tlsCodec) Hijack(nc net.Conn) net.Conn {
	k.sc.Conn, k.sc.loop = nc, false
	return k.tc
}

// serveOnLoop hands the HTTP/1.1 connection tc, over sc, accepted at
// accepted, to the loop, which reads and writes its socket from then on.
func (s *Server) serveOnLoop(tc *tls.Conn, sc *switchConn, accepted time.Time) {
	fd, err := dupFD(sc.Conn)
	if err == nil {
		_ = sc.Conn.Close() // the loop has its own descriptor of the socket
		sc.loop = true
		info := httpcore.ConnInfo{Peer: sc.RemoteAddr().String(), Accepted: accepted, EvenDraining: true, // the TLS session cannot move
			Codec: &tlsCodec{tc: tc, sc: sc}}
		if err = s.loop.ServeConnInfo(fd, info); err != nil {
			_ = unix.Close(fd)
		}
		return
	}
	s.log.Debug("TLS connection refused", "remote", sc.RemoteAddr(), "error", err)
	_ = tc.Close()
}

// dupFD returns a close-on-exec duplicate of c's socket descriptor.
func dupFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("tlsconn: %T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	cerr := rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) })
	if cerr != nil {
		return -1, cerr
	}
	if err != nil {
		return -1, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err)
	}
	return fd, nil
}
