package httpcore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"sync"
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

// testPasser gives away up to shed idle connections when next asked, and
// serves what it takes on to.
type testPasser struct {
	testGate
	to    *Server
	shed  atomic.Int64
	given atomic.Int64
}

func (p *testPasser) Shed() int { return int(p.shed.Swap(0)) }
func (p *testPasser) Give(fd int) bool {
	p.given.Add(1)
	return p.to.ServeConn(fd) == nil
}

// givingPair serves listener fd with a loop whose testPasser gives
// connections to another loop, serving no listener; each runs its
// handler. stop shuts both down and checks how they ended.
func givingPair(t *testing.T, fd int, mineH, otherH Handler) (mine, other *Server, p *testPasser, stop func()) {
	other = NewServer(Config{}, otherH)
	p = &testPasser{testGate: testGate{baton: -1}, to: other}
	mine = NewServer(Config{AcceptGate: p}, mineH)
	errc := make(chan error, 2)
	go func() { errc <- other.Serve(nil) }()
	go func() { errc <- mine.Serve([]int{fd}) }()
	waitFor(t, func() bool { return !mine.Stats().LastTick.IsZero() && !other.Stats().LastTick.IsZero() })
	return mine, other, p, func() {
		t.Helper()
		for _, s := range []*Server{mine, other} {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		for range 2 {
			if err := <-errc; err != nil && err != ErrServerClosed {
				t.Fatal(err)
			}
		}
	}
}

func namedHandler(name string) Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) { w.WriteString(name) })
}

// roundTrip sends one keep-alive request on c and returns the body.
func roundTrip(t *testing.T, c net.Conn, br *bufio.Reader) string {
	t.Helper()
	return sendRead(t, c, br, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
}

// sendRead sends wire on c and returns the body of the response.
func sendRead(t *testing.T, c net.Conn, br *bufio.Reader, wire string) string {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, wire); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestAcceptPasserGivesIdleConns: a loop whose gate gives connections
// away gives only idle ones: each given connection's next request is
// answered by the loop that took it, and one with part of a request read
// stays.
func TestAcceptPasserGivesIdleConns(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	mine, _, p, stop := givingPair(t, fd, namedHandler("mine"), namedHandler("other"))

	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	type client struct {
		c  net.Conn
		br *bufio.Reader
	}
	// The partial head goes first: the loop has read it by the time it
	// answers the requests of connections accepted after it.
	half, halfBR := dial()
	if _, err := io.WriteString(half, "GET / HTTP/1.1\r\nHo"); err != nil {
		t.Fatal(err)
	}
	var idle []client
	for range 3 {
		c, br := dial()
		if got := roundTrip(t, c, br); got != "mine" {
			t.Fatalf("answered by %q before any shedding", got)
		}
		idle = append(idle, client{c, br})
	}
	p.shed.Store(10)
	waitFor(t, func() bool { return p.given.Load() == 3 })
	time.Sleep(2 * shedEvery)
	if n := p.given.Load(); n != 3 {
		t.Fatalf("gave away %d connections, want the 3 idle ones", n)
	}
	for i, cl := range idle {
		if got := roundTrip(t, cl.c, cl.br); got != "other" {
			t.Fatalf("given connection %d: next request answered by %q", i, got)
		}
	}
	if got := sendRead(t, half, halfBR, "st: a\r\n\r\n"); got != "mine" {
		t.Fatalf("the connection with part of a request read was answered by %q", got)
	}
	if n := mine.Stats().Connections; n != 1 {
		t.Errorf("open here: %d, want 1", n)
	}
	stop()
	if n := mine.Stats().Counters.GivenAway; n != 3 {
		t.Errorf("Counters.GivenAway = %d, want 3", n)
	}
	if p.open.Load() != 0 {
		t.Errorf("the gate counts %d open after shutdown", p.open.Load())
	}
}

// TestNotAcceptingBeforeDrained: NotAccepting is closed as soon as
// Shutdown has taken the listeners out, while a request is still being
// answered; that request is answered all the same.
func TestNotAcceptingBeforeDrained(t *testing.T) {
	ts := startServer(t, Config{}, testHandler())
	select {
	case <-ts.NotAccepting():
		t.Fatal("NotAccepting closed while serving")
	default:
	}
	c := ts.dial(t)
	c.send("GET /async?ms=500 HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, func() bool { return ts.Stats().Connections == 1 })
	time.Sleep(50 * time.Millisecond) // the request is in its handler
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	select {
	case <-ts.NotAccepting():
	case <-time.After(2 * time.Second):
		t.Fatal("NotAccepting not closed 2 s after Shutdown began")
	}
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before the request in its handler was answered", err)
	default:
	}
	if resp := c.read("GET"); resp.StatusCode != 200 {
		t.Fatalf("the request in flight got %d", resp.StatusCode)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
}

// TestGiveAwayUnderPipelinedSplitLoad: a loop that gives away every
// movable connection every shedEvery, under clients that pipeline
// requests with bodies and send them in random pieces with pauses
// between: each connection is moved at most once, at a request boundary,
// and every response comes back whole and in order, wherever it was made.
func TestGiveAwayUnderPipelinedSplitLoad(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	mine, other, p, stop := givingPair(t, fd, testHandler(), testHandler())
	stopShed := make(chan struct{})
	go func() { // always ask to give away all that can move
		for {
			select {
			case <-stopShed:
				return
			case <-time.After(shedEvery / 2):
				p.shed.Store(1000)
			}
		}
	}()
	const clients, rounds = 24, 25
	var wg sync.WaitGroup
	fail := make(chan string, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fail <- err.Error()
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			br := bufio.NewReader(c)
			for r := range rounds {
				n := 1 + rng.IntN(3)
				var wire []byte
				var want []string
				for k := range n {
					target := fmt.Sprintf("/echo?c=%d&r=%d&k=%d", i, r, k)
					body := strings.Repeat("x", rng.IntN(300))
					wire = fmt.Appendf(wire, "POST %s HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%s", target, len(body), body)
					want = append(want, fmt.Sprintf("POST %s HTTP/1.1\nh Host: a\nh Content-Length: %d\nbody %d %q\n", target, len(body), len(body), body))
				}
				for len(wire) > 0 {
					m := min(len(wire), 1+rng.IntN(40))
					if _, err := c.Write(wire[:m]); err != nil {
						fail <- fmt.Sprintf("client %d round %d: write: %v", i, r, err)
						return
					}
					wire = wire[m:]
					if rng.IntN(4) == 0 {
						time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
					}
				}
				for k, w := range want {
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						fail <- fmt.Sprintf("client %d round %d response %d: %v", i, r, k, err)
						return
					}
					b, err := io.ReadAll(resp.Body)
					if err != nil || string(b) != w {
						fail <- fmt.Sprintf("client %d round %d response %d: %q (%v), want %q", i, r, k, b, err, w)
						return
					}
				}
				if rng.IntN(3) == 0 {
					time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // idle: movable
				}
			}
		}()
	}
	wg.Wait()
	close(stopShed)
	close(fail)
	for f := range fail {
		t.Error(f)
	}
	given := p.given.Load()
	t.Logf("%d of %d connections given away; served here %d, there %d requests", given, clients, mine.Stats().Requests, other.Stats().Requests)
	if given == 0 || given > clients {
		t.Errorf("%d connections given away, want 1 to %d (each at most once)", given, clients)
	}
	stop()
	if n := mine.Stats().Counters.GivenAway; n != uint64(given) {
		t.Errorf("Counters.GivenAway = %d, want %d", n, given)
	}
}
