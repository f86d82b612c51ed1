package nethttp

import (
	"github.com/clusterd/clusterd/httpcore"

	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestNetHTTPPipelineOrder(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(200 * time.Millisecond)
		}
		io.WriteString(w, r.URL.Path)
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	start := time.Now()
	c.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\nGET /fast HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /post HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET /last HTTP/1.1\r\nHost: a\r\n\r\n")
	for _, want := range []string{"/slow", "/fast", "/post", "/last"} {
		if r := c.read("GET"); r.body != want {
			t.Fatalf("got %q, want %q", r.body, want)
		}
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Fatalf("answered after %v: the slow handler did not hold the others", d)
	}
}

// TestNetHTTPStreamedRequestBody checks that a handler reads a chunked
// body as it arrives: it answers each piece before the next is sent.
func TestNetHTTPStreamedRequestBody(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 100)
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				fmt.Fprintf(w, "got %s;", buf[:n])
				w.(http.Flusher).Flush()
			}
			if err == io.EOF {
				fmt.Fprintf(w, "trailer %s", r.Trailer.Get("X-End"))
				return
			}
			if err != nil {
				fmt.Fprintf(w, "error %v", err)
				return
			}
		}
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nping1\r\n")
	resp, err := readResp(c, "POST")
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		want := fmt.Sprintf("got ping%d;", i)
		got := make([]byte, len(want))
		if _, err := io.ReadFull(resp.Body, got); err != nil || string(got) != want {
			t.Fatalf("piece %d: %q %v", i, got, err)
		}
		if i < 3 {
			c.send(fmt.Sprintf("5\r\nping%d\r\n", i+1))
		}
	}
	c.send("0\r\nX-End: done\r\n\r\n")
	if rest, err := io.ReadAll(resp.Body); err != nil || string(rest) != "trailer done" {
		t.Fatalf("end %q %v", rest, err)
	}
}

// TestNetHTTPLargeUpload sends a body far larger than the pipe, so the
// connection is paused and resumed many times.
func TestNetHTTPLargeUpload(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var sum, n int64
		buf := make([]byte, 7000)
		for {
			k, err := r.Body.Read(buf)
			for _, b := range buf[:k] {
				sum += int64(b)
			}
			n += int64(k)
			if err != nil {
				fmt.Fprintf(w, "%d %d %v", n, sum, err)
				return
			}
		}
	})
	ts := startNetHTTP(t, httpcore.Config{MaxBodyBytes: 64 << 20}, h)
	body := bigBody(8 << 20)
	var sum int64
	for _, b := range body {
		sum += int64(b)
	}
	resp, err := ts.httpClient(t).Post(ts.url("/"), "application/octet-stream", strings.NewReader(string(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if want := fmt.Sprintf("%d %d EOF", len(body), sum); string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestNetHTTPExpectContinue(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			io.WriteString(w, "not reading")
			return
		}
		<-release
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "read %q", b)
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	if b, err := c.br.ReadByte(); err == nil {
		t.Fatalf("sent %q before the handler read the body", b)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	close(release)
	if head := c.readHead(); head != "HTTP/1.1 100 Continue\r\n\r\n" {
		t.Fatalf("got %q", head)
	}
	c.send("body")
	if r := c.read("POST"); r.body != `read "body"` {
		t.Fatalf("final response %q", r.body)
	}

	// A handler that does not read the body gets no 100 Continue, and the
	// connection, whose body never came, closes after the response.
	c.send("POST /ignore HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if r := c.read("POST"); r.StatusCode != 200 || !r.Close {
		t.Fatalf("ignored body: %d close %v", r.StatusCode, r.Close)
	}
	c.expectClosed()
}

func TestNetHTTPFlusher(t *testing.T) {
	release := make(chan struct{})
	results := make(chan error, 2)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		results <- rc.EnableFullDuplex()
		io.WriteString(w, "first;")
		results <- rc.Flush()
		<-release
		io.WriteString(w, "second")
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	resp, err := ts.httpClient(t).Get(ts.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, len("first;"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first;" {
		t.Fatalf("before the handler returned: %q %v", first, err)
	}
	close(release)
	if rest, _ := io.ReadAll(resp.Body); string(rest) != "second" {
		t.Fatalf("rest %q", rest)
	}
	for i, want := range []error{nil, nil} {
		if err := <-results; !errors.Is(err, want) {
			t.Errorf("ResponseController call %d: %v, want %v", i, err, want)
		}
	}
}

func TestNetHTTPContextCancel(t *testing.T) {
	entered := make(chan struct{}, 1)
	cancelled := make(chan time.Time, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		select {
		case <-r.Context().Done():
			cancelled <- time.Now()
		case <-time.After(5 * time.Second):
		}
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	for _, reset := range []bool{false, true} {
		c := ts.dial(t)
		c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
		<-entered
		if reset {
			c.Conn.(*net.TCPConn).SetLinger(0) // close with RST
		}
		closed := time.Now()
		c.Close()
		select {
		case at := <-cancelled:
			t.Logf("reset %v: context cancelled %v after the client closed", reset, at.Sub(closed))
		case <-time.After(time.Second):
			t.Fatalf("reset %v: context not cancelled within 1s of the client closing", reset)
		}
	}

	// A forced shutdown cancels the contexts of requests in flight.
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(time.Second):
		t.Fatal("context not cancelled by a forced shutdown")
	}
}

func TestNetHTTPBoundedPool(t *testing.T) {
	const workers, clients = 4, 12
	var running, peak atomic.Int32
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := running.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		running.Add(-1)
		io.WriteString(w, "done")
	})
	waitFor(t, func() bool { return poolGoroutines() == 0 }) // earlier tests' parked ones retire
	ts := startHandler(t, httpcore.Config{}, New(h, Config{Workers: workers}))
	conns := make([]*clientConn, clients)
	for i := range conns {
		conns[i] = ts.dial(t)
		conns[i].send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	waitFor(t, func() bool { return running.Load() == workers })
	time.Sleep(100 * time.Millisecond) // the others stay queued
	if n := poolGoroutines(); n != workers || peak.Load() != workers {
		t.Fatalf("%d handler goroutines, %d handlers at once; the bound is %d", n, peak.Load(), workers)
	}
	close(release)
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if body, err := readResponse(c); err != nil || body != "done" {
				t.Errorf("%q %v", body, err)
			}
		}()
	}
	wg.Wait()
	waitFor(t, func() bool { return poolGoroutines() == 0 })
}

// poolGoroutines counts the goroutines of net/http adapter pools and those
// running handlers inline (with GOMAXPROCS 1).
func poolGoroutines() int {
	buf := make([]byte, 1<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(stacks, "nethttp.(*pool).work(") + strings.Count(stacks, "nethttp.(*job).runInline(")
}
