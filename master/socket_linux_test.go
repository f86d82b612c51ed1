package master

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// TestSocketOwner: with an owner set, the socket file belongs to it before
// the socket listens, and a stale socket of that owner's is replaced while
// another user's is still refused.
func TestSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")
	o := SocketOptions{Owner: &SocketOwner{UID: nobody, GID: nobody}}
	f, sf, err := bindUnix(path, o)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if st := fi.Sys().(*syscall.Stat_t); err != nil || st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != DefaultSocketMode {
		t.Fatalf("socket file: %v uid %d gid %d %v", fi.Mode(), st.Uid, st.Gid, err)
	}
	_ = f.Close() // leaves a stale socket of nobody's
	f, sf2, err := bindUnix(path, o)
	if err != nil {
		t.Fatalf("stale socket of the owner's not replaced: %v", err)
	}
	_ = f.Close()
	sf.remove() // another file now: must stay
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("removed a socket file the master no longer owns: %v", err)
	}
	if _, _, err := bindUnix(path, SocketOptions{}); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("another user's stale socket: %v", err)
	}
	sf2.remove()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left: %v", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		t.Error("a closed listener still answers")
	}
}

// TestBindTCPOptions: the TCP listen options reach the socket, and a
// zero value leaves them off.
func TestBindTCPOptions(t *testing.T) {
	for _, tc := range []struct {
		o                SocketOptions
		deferSecs, fastQ int
	}{
		{SocketOptions{}, 0, 0},
		{SocketOptions{TCPDeferAccept: 3 * time.Second, TCPFastOpen: 16}, 3, 16},
		// Whole seconds rounded up, then up to the SYN-ACK retransmission
		// schedule (1, 3, 7, 15 … s): 1.5s → 2s → 3s, 10s → 15s.
		{SocketOptions{TCPDeferAccept: 1500 * time.Millisecond}, 3, 0},
		{SocketOptions{TCPDeferAccept: 10 * time.Second}, 15, 0},
	} {
		f, addr, err := bindTCP("127.0.0.1:0", tc.o)
		if err != nil {
			t.Fatal(err)
		}
		fd, _ := rawfd.Of(f)
		d, err1 := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT)
		q, err2 := unix.GetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_FASTOPEN)
		if err1 != nil || err2 != nil || d != tc.deferSecs || q != tc.fastQ || !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("%+v: TCP_DEFER_ACCEPT %d %v, TCP_FASTOPEN %d %v, addr %s; want %d, %d",
				tc.o, d, err1, q, err2, addr, tc.deferSecs, tc.fastQ)
		}
		_ = f.Close()
	}
}
