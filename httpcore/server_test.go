package httpcore

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// exp is an expected response.
type exp struct {
	method string // request method, "GET" if empty (HEAD responses have no body)
	status int
	body   string            // exact body unless contains is set
	has    string            // substring the body must contain
	hdr    map[string]string // header values; "" means absent
	close  bool              // Connection: close
}

type step struct {
	send string
	want []exp
}

func TestExchanges(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		closed bool // the server closes after the last step
	}{
		{name: "simple GET", steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, body: "Hello World\n", hdr: map[string]string{"Content-Length": "12", "Connection": ""}}},
		}}},
		{name: "keep-alive two requests", steps: []step{
			{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 200, body: "Hello World\n"}}},
			{"GET /echo?n=2 HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 200, has: "GET /echo?n=2 HTTP/1.1\n"}}},
		}},
		{name: "pipelined three in one write", steps: []step{{
			"GET /echo?n=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?n=2 HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?n=3 HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, has: "?n=1 "}, {status: 200, has: "?n=2 "}, {status: 200, has: "?n=3 "}},
		}}},
		{name: "leading empty lines", steps: []step{{
			"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 200}},
		}}},
		{name: "content-length body", steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world",
			[]exp{{status: 200, has: "body 11 \"hello world\""}},
		}}},
		{name: "identical content-lengths", steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
			[]exp{{status: 200, has: "body 2 \"hi\""}},
		}}},
		{name: "chunked body with trailers", steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: yes\r\n\r\n" +
				"GET /echo?after HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, has: "t X-Check: yes\nbody 11 \"hello world\""}, {status: 200, has: "/echo?after"}},
		}}},
		{name: "bad request line", closed: true, steps: []step{{
			"GET  / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 400, close: true}},
		}}},
		{name: "TE and CL smuggling", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 400, close: true}},
		}}},
		{name: "conflicting content-lengths", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nhi",
			[]exp{{status: 400}},
		}}},
		{name: "missing Host", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\n\r\n", []exp{{status: 400}},
		}}},
		{name: "two Hosts", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", []exp{{status: 400}},
		}}},
		{name: "bare LF", closed: true, steps: []step{{
			"GET / HTTP/1.1\nHost: a\n\n", []exp{{status: 400}},
		}}},
		{name: "obs-fold", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", []exp{{status: 400}},
		}}},
		{name: "space before colon", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost : a\r\n\r\n", []exp{{status: 400}},
		}}},
		{name: "NUL in value", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", []exp{{status: 400}},
		}}},
		{name: "header too large", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("x", 17<<10) + "\r\n\r\n", []exp{{status: 431}},
		}}},
		{name: "target too long", closed: true, steps: []step{{
			"GET /" + strings.Repeat("x", 17<<10) + " HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 414}},
		}}},
		{name: "content-length too large", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2000000\r\n\r\n" + strings.Repeat("x", 100000),
			[]exp{{status: 413}},
		}}},
		{name: "chunked too large", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n100001\r\n",
			[]exp{{status: 413}},
		}}},
		{name: "unsupported coding", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", []exp{{status: 501}},
		}}},
		{name: "HTTP/2.0", closed: true, steps: []step{{
			"GET / HTTP/2.0\r\nHost: a\r\n\r\n", []exp{{status: 505}},
		}}},
		{name: "HTTP/1.0 closes", closed: true, steps: []step{{
			"GET / HTTP/1.0\r\n\r\n", []exp{{status: 200, body: "Hello World\n", close: true}},
		}}},
		{name: "HTTP/1.0 keep-alive", steps: []step{
			{"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", []exp{{status: 200, hdr: map[string]string{"Connection": "keep-alive"}}}},
			{"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", []exp{{status: 200, hdr: map[string]string{"Connection": "keep-alive"}}}},
		}},
		{name: "Connection: close", closed: true, steps: []step{{
			"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, close: true}},
		}}},
		{name: "HEAD has no body", steps: []step{{
			"HEAD / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{method: "HEAD", status: 200, hdr: map[string]string{"Content-Length": "12"}}, {status: 200, body: "Hello World\n"}},
		}}},
		{name: "204 and 304 have no body or length", steps: []step{{
			"GET /status?code=204 HTTP/1.1\r\nHost: a\r\n\r\nGET /status?code=304 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{
				{status: 204, body: "", hdr: map[string]string{"Content-Length": ""}},
				{status: 304, body: "", hdr: map[string]string{"Content-Length": ""}},
				{status: 200, body: "Hello World\n"},
			},
		}}},
		{name: "async answered in order", steps: []step{{
			"GET /async?ms=100&tag=first HTTP/1.1\r\nHost: a\r\n\r\nGET /echo?second HTTP/1.1\r\nHost: a\r\n\r\nGET /async?ms=10&tag=third HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, body: "async first"}, {status: 200, has: "/echo?second"}, {status: 200, body: "async third"}},
		}}},
		{name: "expect 100-continue", steps: []step{
			{"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n", []exp{{status: 100}}},
			{"body", []exp{{status: 200, has: "body 4 \"body\""}}},
		}},
		{name: "expect 100-continue with body sent", steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody",
			[]exp{{status: 200, has: "body 4 \"body\""}},
		}}},
		{name: "unknown expectation", closed: true, steps: []step{{
			"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: teapot\r\n\r\n", []exp{{status: 417}},
		}}},
		{name: "handler panic", closed: true, steps: []step{{
			"GET /panic HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 500}},
		}}},
		{name: "absolute-form target", steps: []step{{
			"GET http://a/echo?q=1 HTTP/1.1\r\nHost: a\r\n\r\n", []exp{{status: 200, has: "GET http://a/echo?q=1"}},
		}}},
	}
	ts := startServer(t, Config{}, testHandler())
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			for _, st := range tt.steps {
				c.send(st.send)
				for _, e := range st.want {
					checkResponse(t, c, e)
				}
			}
			if tt.closed {
				c.expectClosed()
			}
		})
	}
}

func checkResponse(t *testing.T, c *clientConn, e exp) {
	t.Helper()
	method := e.method
	if method == "" {
		method = "GET"
	}
	r := c.read(method)
	if r.StatusCode != e.status {
		t.Fatalf("status %d, want %d (body %q)", r.StatusCode, e.status, r.body)
	}
	if e.has != "" && !strings.Contains(r.body, e.has) {
		t.Errorf("body %q does not contain %q", r.body, e.has)
	}
	if e.has == "" && e.status != 100 && e.body != "" && r.body != e.body {
		t.Errorf("body %q, want %q", r.body, e.body)
	}
	wantClose := e.close || e.status >= 400 && e.status != 404 // engine errors close
	if r.Close != wantClose {
		t.Errorf("Connection: close is %v, want %v", r.Close, wantClose)
	}
	for k, v := range e.hdr {
		if got := strings.Join(r.Header.Values(k), ","); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if e.status != 100 && r.Header.Get("Date") == "" {
		t.Errorf("no Date header")
	}
}

func TestLargeResponseSlowReader(t *testing.T) {
	const size = 8 << 20
	ts := startServer(t, Config{}, testHandler())
	c := ts.dial(t)
	c.br = bufio.NewReaderSize(slowReader{c.Conn}, 64<<10)
	c.send("GET /big?n=8388608 HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond) // let the server fill the socket buffers and block
	resp := c.read("GET")
	if resp.StatusCode != 200 || len(resp.body) != size || resp.body != string(bigBody(size)) {
		t.Fatalf("status %d, body %d bytes, want %d", resp.StatusCode, len(resp.body), size)
	}
	if r := c.read("GET"); r.body != "Hello World\n" {
		t.Fatalf("second response %q", r.body)
	}
}

func TestBackpressureSlowReader(t *testing.T) {
	// A client that pipelines many large responses without reading must not
	// make the server buffer them all.
	ts := startServer(t, Config{}, testHandler())
	c := ts.dial(t)
	req := "GET /big?n=131072 HTTP/1.1\r\nHost: a\r\n\r\n"
	c.send(strings.Repeat(req, 200)) // 25 MiB of responses
	time.Sleep(100 * time.Millisecond)
	for i := 0; i < 200; i++ {
		if r := c.read("GET"); len(r.body) != 131072 {
			t.Fatalf("response %d: %d bytes", i, len(r.body))
		}
	}
}

func TestHeaderTimeout(t *testing.T) {
	ts := startServer(t, Config{HeaderTimeout: 300 * time.Millisecond}, testHandler())
	c := ts.dial(t)
	start := time.Now()
	done := make(chan struct{})
	go func() { // trickle a head, one byte every 50ms
		defer close(done)
		for _, b := range []byte("GET / HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa") {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	got, err := io.ReadAll(c)
	elapsed := time.Since(start)
	<-done
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408 Request Timeout\r\n")) {
		t.Fatalf("got %q, want a 408", got)
	}
	if elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("closed after %v, want about 300ms", elapsed)
	}
}

func TestRequestTimeoutDuringBody(t *testing.T) {
	ts := startServer(t, Config{RequestTimeout: 300 * time.Millisecond}, testHandler())
	c := ts.dial(t)
	start := time.Now()
	c.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
	got, err := io.ReadAll(c)
	if err != nil && !isReset(err) {
		t.Fatalf("read: %v", err)
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 408 ")) {
		t.Fatalf("got %q, want a 408", got)
	}
	if elapsed := time.Since(start); elapsed < 250*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("closed after %v", elapsed)
	}
}

func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, Config{IdleTimeout: 200 * time.Millisecond}, testHandler())
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.read("GET")
	start := time.Now()
	c.expectClosed()
	if elapsed := time.Since(start); elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("idle connection closed after %v, want about 200ms", elapsed)
	}
}

func TestShutdownWaitsForAsync(t *testing.T) {
	ts := startServer(t, Config{}, testHandler())
	idle := ts.dial(t)
	idle.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	idle.read("GET")
	// A connection idle when the drain begins is kept for drainIdleGrace,
	// and a request on it is answered with Connection: close.
	reuse := ts.dial(t)
	reuse.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	reuse.read("GET")
	busy := ts.dial(t)
	busy.send("GET /async?ms=300&tag=slow HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, func() bool { return ts.Stats().Connections == 3 && ts.Stats().Requests == 2 })
	time.Sleep(20 * time.Millisecond) // the async request is in flight

	start := time.Now()
	shut := make(chan error, 1)
	go func() { shut <- ts.Shutdown(context.Background()) }()
	// Tasks run in order: once this one has run, the loop is draining.
	waitFor(t, func() bool { ts.mu.Lock(); defer ts.mu.Unlock(); return ts.draining })
	began := make(chan struct{})
	ts.Post(func() { close(began) })
	<-began

	// The listening socket is the test's and stays open: a new connection
	// lands in its backlog, but the draining server no longer accepts.
	late := ts.dial(t)
	late.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = late.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if b, err := late.br.ReadByte(); err == nil {
		t.Fatalf("a connection made after Shutdown was served (%q)", b)
	}
	r := busy.read("GET")
	if r.body != "async slow" || !r.Close {
		t.Fatalf("in-flight response %q, close %v", r.body, r.Close)
	}
	busy.expectClosed()
	time.Sleep(100 * time.Millisecond)
	reuse.send("GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := reuse.read("GET"); !r.Close {
		t.Fatalf("request on an idle connection during the drain: close %v, want Connection: close", r.Close)
	}
	reuse.expectClosed()
	idle.expectClosed()
	if d := time.Since(start); d < drainIdleGrace-100*time.Millisecond || d > drainIdleGrace+time.Second {
		t.Errorf("idle connection closed after %v, want about %v", d, drainIdleGrace)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("Shutdown returned after %v, before the async response", d)
	}
	if n := ts.Stats().Connections; n != 0 {
		t.Fatalf("%d connections open after Shutdown", n)
	}
}

func TestShutdownDeadlineForcesClose(t *testing.T) {
	var mu sync.Mutex
	var pending []*ResponseWriter
	h := HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		mu.Lock()
		pending = append(pending, w)
		mu.Unlock()
	})
	ts := startServer(t, Config{}, h)
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(pending) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	c.expectClosed()
	pending[0].WriteString("late")
	pending[0].End() // after the loop is gone: dropped
	pending[0].End() // a second End does nothing
}

func TestServeAndShutdownStates(t *testing.T) {
	s := NewServer(Config{}, testHandler())
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown before Serve: %v", err)
	}
	fd, _ := listenLoopback(t)
	defer closeFD(fd)
	if err := s.Serve([]int{fd}); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}

	ts := startServer(t, Config{}, testHandler())
	waitFor(t, func() bool { return !ts.Stats().LastTick.IsZero() })
	if err := ts.Serve([]int{fd}); !errors.Is(err, ErrServing) {
		t.Fatalf("second Serve = %v", err)
	}
}

func TestServeConn(t *testing.T) {
	s := NewServer(Config{}, testHandler())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }() // connections only from ServeConn
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ServeConn(fds[0]); err != nil {
		t.Fatal(err)
	}
	client := os.NewFile(uintptr(fds[1]), "client")
	defer client.Close()
	io.WriteString(client, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if b, err := io.ReadAll(client); err != nil || !bytes.HasSuffix(b, []byte("Hello World\n")) {
		t.Fatalf("%q %v", b, err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := s.ServeConn(fds[1]); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeConn after Shutdown = %v", err)
	}
}

func TestPostAndStats(t *testing.T) {
	ts := startServer(t, Config{}, testHandler())
	ran := make(chan int, 3)
	for i := range 3 {
		ts.Post(func() { ran <- i })
	}
	for i := range 3 {
		if got := <-ran; got != i {
			t.Fatalf("task %d ran as %d", got, i)
		}
	}
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.read("GET")
	c.read("GET")
	st := ts.Stats()
	if st.Requests != 2 || st.Connections != 1 {
		t.Fatalf("stats %+v", st)
	}
	if time.Since(st.LastTick) > 2*time.Second {
		t.Fatalf("LastTick %v is stale", st.LastTick)
	}
	// An idle loop still ticks (every maxPollWait): a tick comes well after
	// the last event. A loaded machine may delay it, not prevent it.
	idleSince := time.Now()
	for deadline := idleSince.Add(3 * maxPollWait); ; time.Sleep(50 * time.Millisecond) {
		if ts.Stats().LastTick.After(idleSince.Add(maxPollWait / 2)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle loop did not tick: last tick %v after the last request", ts.Stats().LastTick.Sub(idleSince))
		}
	}
}

func TestManyConnections(t *testing.T) {
	ts := startServer(t, Config{}, testHandler())
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", ts.addr)
			if err != nil {
				failed.Add(1)
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			cc := &clientConn{Conn: c, br: newReader(c), t: t}
			for range 5 {
				if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
					failed.Add(1)
					return
				}
				resp, err := readResponse(cc)
				if err != nil || resp != "Hello World\n" {
					failed.Add(1)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d clients failed", n)
	}
	if got := ts.Stats().Requests; got != 500 {
		t.Fatalf("Requests = %d, want 500", got)
	}
}

func TestSharedListenerTwoLoops(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	var servers []*Server
	errc := make(chan error, 2)
	for range 2 {
		s := NewServer(Config{}, testHandler())
		servers = append(servers, s)
		go func() { errc <- s.Serve([]int{fd}) }()
	}
	for i := range 64 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
		if b, err := io.ReadAll(c); err != nil || !bytes.HasSuffix(b, []byte("Hello World\n")) {
			t.Fatalf("conn %d: %q %v", i, b, err)
		}
		c.Close()
	}
	total := uint64(0)
	for _, s := range servers {
		total += s.Stats().Requests
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if total != 64 {
		t.Fatalf("served %d, want 64", total)
	}
	t.Logf("requests per loop: %d, %d", servers[0].Stats().Requests, servers[1].Stats().Requests)
}

// slowReader reads at most 256 KiB per 5ms, about 50 MB/s.
type slowReader struct{ r io.Reader }

func (s slowReader) Read(p []byte) (int, error) {
	time.Sleep(5 * time.Millisecond)
	return s.r.Read(p[:min(len(p), 256<<10)])
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
	}
}
