package httpcore

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// TestIdleConnMemory measures the server heap held by idle keep-alive
// connections after one request each: it must stay well under 1 KB each.
func TestIdleConnMemory(t *testing.T) {
	const n = 1000
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 3*n {
		t.Skipf("descriptor limit %d too low", lim.Cur)
	}
	ts := startServer(t, Config{}, testHandler())
	sa := loopbackSockaddr(t, ts.addr)
	before := heapInUse()
	clients := make([]int, 0, n)
	defer func() {
		for _, fd := range clients {
			closeFD(fd)
		}
	}()
	req := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	buf := make([]byte, 512)
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, fd)
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5})
		if err := unix.Connect(fd, sa); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(fd, req); err != nil {
			t.Fatal(err)
		}
		n, err := unix.Read(fd, buf)
		for err == unix.EINTR { // a signal (the runtime's preemption) ends a read with SO_RCVTIMEO
			n, err = unix.Read(fd, buf)
		}
		if err != nil || n < 12 {
			t.Fatalf("read: %d %v", n, err)
		}
	}
	waitFor(t, func() bool { return ts.Stats().Connections == n })
	perConn := (heapInUse() - before) / n
	t.Logf("server heap per idle connection: %d bytes", perConn)
	if perConn > 1024 {
		t.Fatalf("%d bytes per idle connection", perConn)
	}
}

func heapInUse() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}
