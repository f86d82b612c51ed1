package httpcore

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unsafe"
)

const get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"

func TestIdleConnHoldsNoBuffers(t *testing.T) {
	if size := unsafe.Sizeof(conn{}); size > 256 {
		t.Errorf("conn is %d bytes", size)
	}
	h := newHarness(t, Config{}, nil)
	defer h.close()
	h.l.h = h.asyncHandler()
	h.feed([]byte(get[:10]))
	if len(h.c.in) != 10 || h.c.out != nil {
		t.Fatalf("partial request: in %d bytes, out %v", len(h.c.in), h.c.out)
	}
	h.feed([]byte(get[10:] + get))
	if n := bytes.Count(h.out, []byte("HTTP/1.1 200 OK")); n != 2 {
		t.Fatalf("%d responses", n)
	}
	if h.c.in != nil || h.c.out != nil || !h.c.idle() {
		t.Fatalf("idle conn holds in %d/%d out %d/%d", len(h.c.in), cap(h.c.in), len(h.c.out), cap(h.c.out))
	}
}

func TestAsyncPausesConnection(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	defer h.close()
	h.l.h = h.asyncHandler()
	h.feed([]byte("GET /echo?1 HTTP/1.1\r\nHost: a\r\n\r\nGET /async?2 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?3 HTTP/1.1\r\nHost: a\r\n\r\nGET /e"))
	if len(h.async) != 1 || h.c.async == nil || h.c.events&evRead != 0 {
		t.Fatalf("async %d, conn events %x", len(h.async), h.c.events)
	}
	if !bytes.Contains(h.out, []byte("/echo?1")) || bytes.Contains(h.out, []byte("/echo?3")) {
		t.Fatalf("output while async pending: %q", h.out)
	}
	if want := "GET /echo?3 HTTP/1.1\r\nHost: a\r\n\r\nGET /e"; string(h.c.in) != want {
		t.Fatalf("kept input %q", h.c.in)
	}
	h.endAsync()
	i1, i2, i3 := bytes.Index(h.out, []byte("/echo?1")), bytes.Index(h.out, []byte("/async?2")), bytes.Index(h.out, []byte("/echo?3"))
	if i1 < 0 || i2 < i1 || i3 < i2 {
		t.Fatalf("out of order: %q", h.out)
	}
	if string(h.c.in) != "GET /e" || h.c.events&evRead == 0 {
		t.Fatalf("after End: in %q events %x", h.c.in, h.c.events)
	}
}

func TestBackpressure(t *testing.T) {
	h := newHarness(t, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Write(bigBody(100 << 10))
	}))
	defer h.close()
	h.l.highWater = 64 << 10
	h.noRead = true
	h.feed([]byte(strings.Repeat(get, 20)))
	if h.c.events&evRead != 0 || h.c.events&evWrite == 0 {
		t.Fatalf("events %x with %d bytes pending", h.c.events, h.c.pendingOut())
	}
	if p := h.c.pendingOut(); p > 64<<10+200<<10 {
		t.Fatalf("%d bytes of output buffered", p)
	}
	h.noRead = false
	h.run()
	if n := bytes.Count(h.out, []byte("HTTP/1.1 200 OK")); n != 20 {
		t.Fatalf("%d responses after draining", n)
	}
	if h.c.out != nil || h.c.in != nil {
		t.Fatalf("buffers kept")
	}
}

func TestTrickledHead(t *testing.T) {
	h := newHarness(t, Config{}, testHandler())
	defer h.close()
	head := "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + strings.Repeat("v", 8000) + "\r\n\r\n"
	for i := range len(head) {
		h.feed([]byte{head[i]})
	}
	if !bytes.HasSuffix(h.out, []byte("Hello World\n")) {
		t.Fatalf("response %q", h.out)
	}
	h.feed([]byte("GET / HTTP/1.1\r\nX: " + strings.Repeat("v", 17000)))
	if !bytes.Contains(h.out, []byte("431 Request Header Fields Too Large")) {
		t.Fatalf("no 431 in %q", h.out)
	}
}

func TestHalfCloseFlushesThenCloses(t *testing.T) {
	h := newHarness(t, Config{}, testHandler())
	defer h.close()
	h.feed([]byte(get + get))
	h.shutWrite()
	if n := bytes.Count(h.out, []byte("Hello World")); n != 2 || !h.closed() {
		t.Fatalf("%d responses, closed %v", n, h.closed())
	}
}

func TestLingerAfterError(t *testing.T) {
	h := newHarness(t, Config{}, testHandler())
	defer h.close()
	h.feed([]byte("GET / HTTP/9.9\r\n\r\nmore bytes"))
	if !bytes.HasPrefix(h.out, []byte("HTTP/1.1 505 ")) || h.c.state != connLingering {
		t.Fatalf("state %d, out %q", h.c.state, h.out)
	}
	h.feed([]byte("still sending"))
	if h.closed() || len(h.c.in) != 0 {
		t.Fatalf("lingering conn closed %v, kept %d bytes", h.closed(), len(h.c.in))
	}
	h.shutWrite()
	if !h.closed() {
		t.Fatalf("not closed at client EOF")
	}
}

func TestLingerTimeout(t *testing.T) {
	h := newHarness(t, Config{}, testHandler())
	defer h.close()
	h.feed([]byte("BAD\x01"))
	if h.c.state != connLingering {
		t.Fatalf("state %d", h.c.state)
	}
	h.advance(lingerTimeout)
	if !h.closed() {
		t.Fatal("lingering conn not closed after lingerTimeout")
	}
}

func TestTimeouts(t *testing.T) {
	cfg := Config{IdleTimeout: time.Second, HeaderTimeout: 2 * time.Second, RequestTimeout: 3 * time.Second}
	tests := []struct {
		name  string
		input string
		wait  time.Duration // stays open before, closes after
		out   string        // response prefix at the timeout
	}{
		{"fresh conn without a byte", "", 2 * time.Second, ""},
		{"idle after a request", get, time.Second, ""},
		{"slow head", "GET / HTTP/1.1\r\n", 2 * time.Second, "HTTP/1.1 408 "},
		{"slow body", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 9\r\n\r\nabc", 3 * time.Second, "HTTP/1.1 408 "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, cfg, testHandler())
			defer h.close()
			h.feed([]byte(tt.input))
			h.out = h.out[:0]
			h.advance(tt.wait - time.Millisecond)
			if h.closed() {
				t.Fatalf("closed before %v", tt.wait)
			}
			h.advance(time.Millisecond)
			if !h.closed() || !bytes.HasPrefix(h.out, []byte(tt.out)) || tt.out == "" && len(h.out) > 0 {
				t.Fatalf("closed %v, out %q", h.closed(), h.out)
			}
		})
	}
}

func TestWriteTimeout(t *testing.T) {
	h := newHarness(t, Config{WriteTimeout: time.Second}, testHandler())
	defer h.close()
	h.noRead = true
	h.feed([]byte("GET /big?n=4000000 HTTP/1.1\r\nHost: a\r\n\r\n"))
	if h.c.pendingOut() == 0 {
		t.Fatal("output not stuck")
	}
	h.advance(time.Second)
	if !h.closed() {
		t.Fatal("stuck conn not closed")
	}
}

func TestTimerHeap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h timerHeap
	conns := make([]*conn, 50)
	model := map[*conn]int64{}
	for i := range conns {
		conns[i] = &conn{timer: timerEntry{index: -1}}
	}
	now := int64(0)
	for range 20000 {
		c := conns[rng.IntN(len(conns))]
		switch rng.IntN(4) {
		case 0, 1:
			when := now + 1 + rng.Int64N(100)
			h.set(c, when)
			model[c] = when
		case 2:
			h.remove(c)
			delete(model, c)
		case 3:
			now += rng.Int64N(10)
			for c := h.popExpired(now); c != nil; c = h.popExpired(now) {
				if want, ok := model[c]; !ok || want > now {
					t.Fatalf("popped %d at %d, model %d %v", c.timer.deadline, now, want, ok)
				}
				delete(model, c)
			}
			for c, when := range model {
				if when <= now {
					t.Fatalf("deadline %d missed at %d", when, now)
				}
				if next, ok := h.next(); !ok || next > when {
					t.Fatalf("next %d after deadline %d", next, when)
				}
				_ = c
			}
		}
	}
}
