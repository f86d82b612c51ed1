package httpcore

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// serveInfo hands s one end of a socket pair described by info and returns
// the other end.
func serveInfo(t *testing.T, s *Server, info ConnInfo) (*os.File, error) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ServeConnInfo(fds[0], info); err != nil {
		_ = unix.Close(fds[0])
		_ = unix.Close(fds[1])
		return nil, err
	}
	return os.NewFile(uintptr(fds[1]), "client"), nil
}

// The peer named in ConnInfo is the request's RemoteAddr; the head is due
// HeaderTimeout after Accepted, not after the hand-over; EvenDraining is
// served by a draining server.
func TestServeConnInfo(t *testing.T) {
	release := make(chan struct{})
	s := NewServer(Config{HeaderTimeout: 2 * time.Second}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		if r.Path() == "/wait" {
			w.Async()
			go func() { <-release; _, _ = w.WriteString("done\n"); w.End() }()
			return
		}
		_, _ = w.WriteString("from " + r.RemoteAddr() + "\n")
	}))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }()

	c, err := serveInfo(t, s, ConnInfo{Peer: "192.0.2.7:4433"})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasSuffix(string(b), "from 192.0.2.7:4433\n") {
		t.Errorf("RemoteAddr: %q", b)
	}
	c.Close()

	// Connected 1.8 s ago: 200 ms are left of the header timeout.
	start := time.Now()
	c, err = serveInfo(t, s, ConnInfo{Accepted: start.Add(-1800 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(c) // the server closes it (after a 408, or silently)
	if took := time.Since(start); took > 1500*time.Millisecond {
		t.Errorf("closed %v after the hand-over; the header timeout ran out 200ms after it", took)
	}
	c.Close()

	// A request in flight keeps the server draining; then only
	// EvenDraining connections are taken.
	busy, err := serveInfo(t, s, ConnInfo{})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, _ = io.WriteString(busy, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if _, err := serveInfo(t, s, ConnInfo{}); err != ErrServerClosed {
		t.Errorf("a draining server took a connection: %v", err)
	}
	c, err = serveInfo(t, s, ConnInfo{EvenDraining: true})
	if err != nil {
		t.Fatalf("EvenDraining: %v", err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	b, _ := io.ReadAll(c) // answered with Connection: close, then closed
	if !strings.Contains(string(b), "Connection: close") || !strings.HasSuffix(string(b), "from @\n") {
		t.Errorf("EvenDraining while draining: %q", b)
	}
	c.Close()
	close(release)
	_, _ = io.ReadAll(busy)
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestServeConnInfoIdle: a connection handed over as Idle is between
// requests: it is closed after IdleTimeout without a request, not after
// HeaderTimeout, it serves its next request as any, and it does not count
// as accepted again.
func TestServeConnInfoIdle(t *testing.T) {
	s := NewServer(Config{IdleTimeout: 200 * time.Millisecond, HeaderTimeout: 5 * time.Second},
		HandlerFunc(func(w *ResponseWriter, r *Request) { _, _ = w.WriteString("ok\n") }))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }()

	start := time.Now()
	c, err := serveInfo(t, s, ConnInfo{Idle: true, Accepted: start.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Errorf("an idle connection timed out with %q, want a silent close", b)
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("idle connection closed %v after the hand-over, want the idle timeout (200ms)", took)
	}
	c.Close()

	c, err = serveInfo(t, s, ConnInfo{Idle: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(c); !strings.HasSuffix(string(b), "\r\n\r\nok\n") {
		t.Errorf("request on an idle hand-over: %q", b)
	}
	c.Close()

	c, err = serveInfo(t, s, ConnInfo{}) // a new connection: counted
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	_, _ = io.ReadAll(c)
	c.Close()

	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil && err != ErrServerClosed {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Counters.Accepted != 1 || st.Requests != 2 {
		t.Errorf("Accepted %d, Requests %d; want 1 (the idle hand-overs are not new connections) and 2", st.Counters.Accepted, st.Requests)
	}
}
