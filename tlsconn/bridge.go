package tlsconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
)

// Buffer sizes of the copies between a TLS connection and the loop.
const (
	inBufSize  = 4 << 10  // client → loop; held while the client is idle
	outBufSize = 16 << 10 // loop → client; one TLS record, pooled
)

var outBufs = sync.Pool{New: func() any { b := make([]byte, outBufSize); return &b }}

// pipeToLoop makes a socket pair, gives one end to the loop as a
// connection from peer, accepted at accepted, and returns the other end.
func pipeToLoop(loop *httpcore.Server, peer string, accepted time.Time) (*net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	info := httpcore.ConnInfo{Peer: peer, Accepted: accepted, EvenDraining: true} // the TLS session cannot move
	if err := loop.ServeConnInfo(fds[0], info); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return nil, err
	}
	f := os.NewFile(uintptr(fds[1]), "tls-plaintext")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("tlsconn: %w", err)
	}
	return c.(*net.UnixConn), nil
}

// bridge serves an HTTP/1.1 connection: the loop reads the plaintext from a
// socket pair and writes its responses back into it; two copies move the
// bytes. Whichever side ends first ends the other.
func (s *Server) bridge(tc *tls.Conn, accepted time.Time) {
	pc, err := pipeToLoop(s.loop, tc.RemoteAddr().String(), accepted)
	if err != nil {
		s.log.Debug("TLS connection refused", "remote", tc.RemoteAddr(), "error", err)
		_ = tc.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.toLoop(pc, tc)
	}()
	s.toClient(tc, pc)
	_ = tc.Close() // ends toLoop's read
	<-done
	_ = pc.Close()
}

// toLoop copies the client's requests into the loop; at the client's end
// of input the loop sees end of input too.
func (s *Server) toLoop(pc *net.UnixConn, tc *tls.Conn) {
	buf := make([]byte, inBufSize)
	for {
		n, err := tc.Read(buf)
		if n > 0 {
			if _, werr := pc.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			_ = pc.CloseWrite()
			return
		}
	}
}

// toClient copies the loop's responses to the client until the loop closes
// the connection, or the client stops taking them for WriteTimeout. Its
// buffer is taken only when there is something to send, so an idle
// connection holds none.
func (s *Server) toClient(tc *tls.Conn, pc *net.UnixConn) {
	rc, err := pc.SyscallConn()
	if err != nil {
		return
	}
	for {
		var bp *[]byte
		var n int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			bp = outBufs.Get().(*[]byte)
			n, rerr = unix.Read(int(fd), *bp)
			if rerr == unix.EAGAIN {
				outBufs.Put(bp)
				bp = nil
				return false
			}
			return true
		})
		if err == nil && rerr == nil && n > 0 {
			_ = tc.SetWriteDeadline(time.Now().Add(s.cfg.HTTP.WriteTimeout))
			_, err = tc.Write((*bp)[:n])
		}
		if bp != nil {
			outBufs.Put(bp)
		}
		switch {
		case err != nil, rerr != nil && !errors.Is(rerr, unix.EINTR):
			return
		case n == 0 && rerr == nil: // the loop closed the connection
			_ = tc.CloseWrite()
			return
		}
	}
}
