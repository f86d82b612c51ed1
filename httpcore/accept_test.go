package httpcore

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// TestAcceptBackoffOnEMFILE runs the server out of descriptors: accept fails
// with EMFILE, the loop must back off instead of spinning on the readable
// listener, and serve the connection once descriptors are available again.
func TestAcceptBackoffOnEMFILE(t *testing.T) {
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	ts := startServer(t, Config{Logger: logger}, testHandler())
	waitFor(t, func() bool { return !ts.Stats().LastTick.IsZero() })
	client, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(client)
	sa := loopbackSockaddr(t, ts.addr)

	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lowest := lowestFreeFD(t)
	limited := old
	limited.Cur = uint64(lowest) // no descriptor can be allocated now
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &limited); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
	restore := func() { _ = unix.Setrlimit(unix.RLIMIT_NOFILE, &old) }
	defer restore()

	if err := unix.Connect(client, sa); err != nil { // lands in the backlog
		restore()
		t.Fatal(err)
	}
	before := cpuTime()
	time.Sleep(400 * time.Millisecond)
	spent := cpuTime() - before
	restore()
	if spent > 150*time.Millisecond {
		t.Errorf("loop used %v of CPU in 400ms while accept failed", spent)
	}
	if !strings.Contains(logs.String(), "accept paused") || !strings.Contains(logs.String(), "too many open files") {
		t.Errorf("no accept pause logged: %q", logs.String())
	}
	if time.Since(ts.Stats().LastTick) > time.Second {
		t.Errorf("loop stopped ticking")
	}
	if _, err := unix.Write(client, []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = unix.SetsockoptTimeval(client, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
	buf := make([]byte, 4096)
	n, err := unix.Read(client, buf)
	for err == unix.EINTR { // a signal (the runtime's preemption) ends a read with SO_RCVTIMEO
		n, err = unix.Read(client, buf)
	}
	if err != nil || n < 12 || string(buf[:12]) != "HTTP/1.1 200" {
		t.Fatalf("after the limit was lifted: %q %v", buf[:max(n, 0)], err)
	}
}

func lowestFreeFD(t *testing.T) int {
	f, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return int(f.Fd())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loopbackSockaddr(t *testing.T, addr string) *unix.SockaddrInet4 {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}
}

// syncBuffer is a log destination safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
