package httpcore

import (
	"bytes"
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// testGate holds for hold at every accept (0: never) and counts.
type testGate struct {
	baton int
	hold  time.Duration
	open  atomic.Int64
	holds atomic.Int64
}

func (g *testGate) Conns(delta int) { g.open.Add(int64(delta)) }
func (g *testGate) Accepted()       {}
func (g *testGate) Baton() int      { return g.baton }
func (g *testGate) Holding() bool   { return g.hold > 0 }
func (g *testGate) Hold(bool) time.Duration {
	if g.hold > 0 {
		g.holds.Add(1)
	}
	return g.hold
}

// TestAcceptGateHoldPassesTheBaton: two loops share a listener and a
// baton. The one the kernel wakes first holds (for far longer than the
// test) at every accept: the connection whose wake-up it leaves, and
// every later one, are served at once by the other, woken by the baton.
func TestAcceptGateHoldPassesTheBaton(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	baton, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(baton)
	holder := &testGate{baton: baton, hold: time.Minute}
	taker := &testGate{baton: baton}
	var servers []*Server
	errc := make(chan error, 2)
	for _, g := range []*testGate{holder, taker} { // the holder registers first: the kernel wakes it first
		s := NewServer(Config{AcceptGate: g}, testHandler())
		servers = append(servers, s)
		go func() { errc <- s.Serve([]int{fd}) }()
		waitFor(t, func() bool { return !s.Stats().LastTick.IsZero() })
		time.Sleep(20 * time.Millisecond) // in epoll_wait
	}
	for i := range 20 {
		start := time.Now()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.HasSuffix(b, []byte("Hello World\n")) {
			t.Fatalf("conn %d: %q %v", i, b, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("conn %d answered after %v", i, d)
		}
	}
	if holder.holds.Load() == 0 {
		t.Error("the holding loop was never asked: the test shows nothing")
	}
	if n := servers[0].Stats().Requests; n != 0 {
		t.Errorf("the holding loop served %d", n)
	}
	if n := servers[1].Stats().Requests; n != 20 {
		t.Errorf("the other loop served %d, want 20", n)
	}
	for _, s := range servers {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if holder.open.Load() != 0 || taker.open.Load() != 0 {
		t.Errorf("open connections after shutdown: %d and %d, want 0", holder.open.Load(), taker.open.Load())
	}
}
