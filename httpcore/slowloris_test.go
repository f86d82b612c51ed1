package httpcore

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSlowloris opens 1000 connections that each send a request head one
// byte per second. A normal client must keep getting prompt answers, on a
// keep-alive connection and on new ones, and every slow connection must be
// closed at the header timeout. The test drives the slow connections with
// one ticking goroutine and watches them with one epoll instance.
func TestSlowloris(t *testing.T) {
	if testing.Short() {
		t.Skip("1000 connections for about 3 s")
	}
	const (
		n             = 1000
		headerTimeout = 2 * time.Second
		// The machine may be shared and busy: one slow answer is noise, but
		// a loop held up by the slow connections would show in the median,
		// and answers as slow as the header timeout would show in the max.
		maxMedian  = 50 * time.Millisecond
		maxLatency = time.Second
	)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < 2*n+100 {
		t.Skipf("descriptor limit %d too low for %d connections", lim.Cur, n)
	}
	ts := startServer(t, Config{HeaderTimeout: headerTimeout}, testHandler())
	sl := dialSlowloris(t, ts.addr, n)
	defer sl.close()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sl.tick(stop) }()
	var lat latencies
	go func() { defer wg.Done(); lat = normalClient(t, ts.addr, stop) }()
	sl.watch(t, headerTimeout+3*time.Second)
	close(stop)
	wg.Wait()

	sl.check(t, headerTimeout)
	t.Logf("normal client while %d connections trickled: %s", n, lat)
	if lat.count() < 50 || lat.median() > maxMedian || lat.max() > maxLatency || lat.failed > 0 {
		t.Fatalf("normal client: %s, want a median within %v and every request answered within %v", lat, maxMedian, maxLatency)
	}
	// The normal client has hung up too: nothing may stay open.
	waitFor(t, func() bool { return ts.Stats().Connections == 0 })
}

// slowHead is what a slow connection sends, one byte per tick.
const slowHead = "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

type slowConn struct {
	fd     int
	dialed time.Time
	closed time.Time // when the watcher saw EOF or a reset
	got    []byte    // what the server sent before closing
	reset  bool
	open   atomic.Bool
}

type slowloris struct {
	conns  []*slowConn
	byFD   map[int]*slowConn
	epfd   int
	dialed time.Time // when the last connection was made
}

// dialSlowloris connects n sockets, each sending the first byte of slowHead
// at once, and registers them with an epoll instance of the test's own.
func dialSlowloris(t *testing.T, addr string, n int) *slowloris {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	sl := &slowloris{epfd: epfd, byFD: make(map[int]*slowConn, n)}
	sa := loopbackSockaddr(t, addr)
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			sl.close()
			t.Fatal(err)
		}
		c := &slowConn{fd: fd}
		sl.conns = append(sl.conns, c)
		if err := unix.Connect(fd, sa); err != nil {
			sl.close()
			t.Fatalf("connect %d: %v", len(sl.conns), err)
		}
		c.dialed = time.Now()
		c.open.Store(true)
		sl.byFD[fd] = c
		_ = unix.SetNonblock(fd, true)
		_, _ = unix.Write(fd, []byte(slowHead[:1]))
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
			sl.close()
			t.Fatal(err)
		}
	}
	sl.dialed = time.Now()
	return sl
}

func (sl *slowloris) close() {
	for _, c := range sl.conns {
		_ = unix.Close(c.fd)
	}
	_ = unix.Close(sl.epfd)
}

// tick sends the next byte of slowHead on every open connection once a
// second, half a second out of phase with the dialing so that no byte races
// with the server closing at the header timeout.
func (sl *slowloris) tick(stop chan struct{}) {
	next := sl.conns[0].dialed.Add(1500 * time.Millisecond)
	for i := 1; i < len(slowHead); i++ {
		select {
		case <-stop:
			return
		case <-time.After(time.Until(next)):
		}
		next = next.Add(time.Second)
		for _, c := range sl.conns {
			if c.open.Load() {
				_, _ = unix.SendmsgN(c.fd, []byte{slowHead[i]}, nil, nil, unix.MSG_NOSIGNAL|unix.MSG_DONTWAIT)
			}
		}
	}
}

// watch records when each connection is closed by the server, until all
// are or the time is up.
func (sl *slowloris) watch(t *testing.T, limit time.Duration) {
	events := make([]unix.EpollEvent, 256)
	buf := make([]byte, 4096)
	open := len(sl.conns)
	for deadline := sl.dialed.Add(limit); open > 0 && time.Now().Before(deadline); {
		k, err := unix.EpollWait(sl.epfd, events, 100)
		if err != nil && err != unix.EINTR {
			t.Fatalf("epoll_wait: %v", err)
		}
		for _, ev := range events[:max(k, 0)] {
			c := sl.byFD[int(ev.Fd)]
			if c.open.Load() && sl.readConn(c, buf) {
				open--
			}
		}
	}
}

// readConn reads what the server sent c and reports whether c is closed.
func (sl *slowloris) readConn(c *slowConn, buf []byte) bool {
	for {
		k, err := unix.Read(c.fd, buf)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case k > 0:
			c.got = append(c.got, buf[:k]...)
			continue
		}
		c.reset = err != nil
		c.closed = time.Now()
		c.open.Store(false)
		_ = unix.EpollCtl(sl.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
		return true
	}
}

// check requires every connection to be closed between the header timeout
// and a second after it, with a 408 or nothing.
func (sl *slowloris) check(t *testing.T, timeout time.Duration) {
	var after []time.Duration
	var got408, silent, resets int
	for i, c := range sl.conns {
		if c.open.Load() {
			t.Fatalf("connection %d still open %v after dialing", i, time.Since(c.dialed))
		}
		d := c.closed.Sub(c.dialed)
		if d < timeout-50*time.Millisecond || d > timeout+time.Second {
			t.Errorf("connection %d closed after %v, want %v to %v", i, d, timeout, timeout+time.Second)
		}
		after = append(after, d)
		switch {
		case bytes.HasPrefix(c.got, []byte("HTTP/1.1 408 ")):
			got408++
		case len(c.got) > 0:
			t.Errorf("connection %d got %q", i, c.got)
		case c.reset:
			resets++
		default:
			silent++
		}
	}
	slices.Sort(after)
	t.Logf("%d slow connections dialed in %v; closed after %v (first) %v (median) %v (last); 408: %d, EOF only: %d, reset: %d",
		len(sl.conns), sl.dialed.Sub(sl.conns[0].dialed), after[0].Round(time.Millisecond),
		after[len(after)/2].Round(time.Millisecond), after[len(after)-1].Round(time.Millisecond), got408, silent, resets)
}

// latencies of the normal client's requests.
type latencies struct {
	keepAlive, fresh []time.Duration
	failed           int
}

func (l latencies) count() int { return len(l.keepAlive) + len(l.fresh) }

func (l latencies) max() time.Duration {
	return max(slices.Max(append([]time.Duration{0}, l.keepAlive...)), slices.Max(append([]time.Duration{0}, l.fresh...)))
}

func (l latencies) median() time.Duration {
	all := slices.Concat(l.keepAlive, l.fresh)
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return all[len(all)/2]
}

func (l latencies) String() string {
	return fmt.Sprintf("keep-alive %s; new connection %s; failed %d", summarize(l.keepAlive), summarize(l.fresh), l.failed)
}

func summarize(d []time.Duration) string {
	if len(d) == 0 {
		return "none"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p int) time.Duration { return s[min(len(s)-1, len(s)*p/100)].Round(10 * time.Microsecond) }
	return fmt.Sprintf("%d requests, p50 %v p99 %v max %v", len(s), q(50), q(99), s[len(s)-1].Round(10*time.Microsecond))
}

// normalClient sends a request every 10 ms until stop, on one keep-alive
// connection and, every fifth time, on a new connection, and measures each.
func normalClient(t *testing.T, addr string, stop chan struct{}) latencies {
	var l latencies
	ka, err := net.Dial("tcp", addr)
	if err != nil {
		l.failed++
		return l
	}
	defer ka.Close()
	kc := &clientConn{Conn: ka, br: newReader(ka), t: t}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return l
		case <-time.After(10 * time.Millisecond):
		}
		start := time.Now()
		if i%5 == 4 {
			if err := freshRequest(addr); err != nil {
				l.failed++
			}
			l.fresh = append(l.fresh, time.Since(start))
			continue
		}
		_ = ka.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(ka, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
			l.failed++
			return l
		}
		if body, err := readResponse(kc); err != nil || body != "Hello World\n" {
			l.failed++
			return l
		}
		l.keepAlive = append(l.keepAlive, time.Since(start))
	}
}

// freshRequest dials, sends one request with Connection: close and reads
// the whole response.
func freshRequest(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); err != nil {
		return err
	}
	b, err := io.ReadAll(c)
	if err == nil && !bytes.HasSuffix(b, []byte("Hello World\n")) {
		err = io.ErrUnexpectedEOF
	}
	return err
}
