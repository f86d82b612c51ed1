package tlsconn

import (
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
)

// pipeToLoop makes a socket pair, gives one end to the loop as a
// connection from peer, accepted at accepted, and returns the other end:
// an HTTP/2 stream's request goes in, its response comes out.
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
