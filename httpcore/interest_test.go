package httpcore

import (
	"bytes"
	"testing"
	"time"
)

// TestAsyncKeepsReadInterest: a response made off the loop with nothing
// pipelined behind it keeps the connection's epoll interest as it was (no
// epoll_ctl there and back); input that comes meanwhile waits in the
// socket, unread, until the response ends; and no receive timeout runs
// while the handler works.
func TestAsyncKeepsReadInterest(t *testing.T) {
	h := newHarness(t, Config{IdleTimeout: time.Second}, nil)
	defer h.close()
	h.l.h = h.asyncHandler()
	h.feed([]byte("GET /async?1 HTTP/1.1\r\nHost: a\r\n\r\n"))
	if len(h.async) != 1 || h.c.events != evRead {
		t.Fatalf("async %d, events %x; want the read interest kept", len(h.async), h.c.events)
	}
	h.advance(3 * time.Second) // past IdleTimeout: the handler may take its time
	if h.c.state != connActive {
		t.Fatalf("closed while the handler worked (state %d)", h.c.state)
	}
	h.feed([]byte("GET /echo?2 HTTP/1.1\r\nHost: a\r\n\r\n"))
	if h.c.events&evRead != 0 || len(h.c.in) != 0 || bytes.Contains(h.out, []byte("/echo?2")) {
		t.Fatalf("input while async: events %x, %d bytes read, out %q", h.c.events, len(h.c.in), h.out)
	}
	h.endAsync()
	i1, i2 := bytes.Index(h.out, []byte("/async?1")), bytes.Index(h.out, []byte("/echo?2"))
	if i1 < 0 || i2 < i1 || h.c.events != evRead || !h.c.idle() {
		t.Fatalf("after End: events %x, out %q", h.c.events, h.out)
	}

	// The client leaving while the handler works is noticed.
	h.feed([]byte("GET /async?3 HTTP/1.1\r\nHost: a\r\n\r\n"))
	gone := false
	h.async[0].OnClientGone(func() { gone = true })
	h.shutWrite()
	if !gone || h.c.flags&connPeerEOF == 0 {
		t.Fatalf("EOF while async: gone %v, flags %x", gone, h.c.flags)
	}
	h.endAsync()
	if h.c.state != connClosed {
		t.Fatalf("state %d after the last response to a gone client", h.c.state)
	}
}
