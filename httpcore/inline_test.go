package httpcore

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// onOneProc runs the test's servers with GOMAXPROCS 1, where RunInline
// runs work on the loop's goroutine.
func onOneProc(t *testing.T) {
	prev := runtime.GOMAXPROCS(1)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
}

// inlineHandler answers every request from RunInline work; a request for
// /block waits for release first, and reports through started that it
// ran. inline counts requests that were run inline.
func inlineHandler(release <-chan struct{}, started chan<- string, inline *atomic.Int32) Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		target := strings.Clone(r.Target()) // r is valid only until ServeHTTP returns
		work := func() {
			if target == "/block" {
				started <- target
				<-release
			}
			_, _ = w.WriteString("done " + target)
			w.End()
		}
		if w.RunInline(work) {
			inline.Add(1)
			return
		}
		go work()
	})
}

// TestRunInlineBlockingWork: work that blocks on the loop's goroutine
// hands the loop to another goroutine: other connections are served
// meanwhile, several blocked pieces of work at once are fine, and each
// blocked response arrives once its work goes on.
func TestRunInlineBlockingWork(t *testing.T) {
	onOneProc(t)
	release := make(chan struct{})
	started := make(chan string, 8)
	var inline atomic.Int32
	ts := startServer(t, Config{}, inlineHandler(release, started, &inline))

	blocked := make([]*clientConn, 3)
	for i := range blocked {
		blocked[i] = ts.dial(t)
		blocked[i].send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
		select {
		case <-started:
		case <-time.After(5 * time.Second):
			t.Fatalf("blocked request %d never ran", i)
		}
	}
	for i := range 20 {
		c := ts.dial(t)
		path := fmt.Sprintf("/free%d", i)
		c.send("GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n")
		if body, err := readResponse(c); err != nil || body != "done "+path {
			t.Fatalf("while work is blocked: %q %v", body, err)
		}
	}
	close(release)
	for i, c := range blocked {
		if body, err := readResponse(c); err != nil || body != "done /block" {
			t.Fatalf("blocked request %d: %q %v", i, body, err)
		}
	}
	if n := inline.Load(); n != 23 {
		t.Fatalf("%d of 23 requests ran inline", n)
	}
}

// TestRunInlinePipelined: pipelined requests answered inline come back
// whole and in order, in one write or several, for batches around the
// loop's limits.
func TestRunInlinePipelined(t *testing.T) {
	onOneProc(t)
	var inline atomic.Int32
	ts := startServer(t, Config{}, inlineHandler(nil, nil, &inline))
	for _, n := range []int{1, 2, 15, 16, 17, 64, 200} {
		c := ts.dial(t)
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "GET /%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
		}
		c.send(b.String())
		for i := range n {
			want := fmt.Sprintf("done /%d", i)
			if body, err := readResponse(c); err != nil || body != want {
				t.Fatalf("%d pipelined, response %d: %q %v, want %q", n, i, body, err, want)
			}
		}
	}
	if inline.Load() == 0 {
		t.Fatal("nothing ran inline")
	}
}

// TestRunInlineShutdownWhileBlocked: the server shuts down while work
// blocked after a takeover; the loop's goroutines end (the leak check in
// TestMain counts them) and the work runs to its end.
func TestRunInlineShutdownWhileBlocked(t *testing.T) {
	onOneProc(t)
	release := make(chan struct{})
	started := make(chan string, 1)
	var inline atomic.Int32
	ts := startServer(t, Config{}, inlineHandler(release, started, &inline))
	c := ts.dial(t)
	c.send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	go func() {
		time.Sleep(50 * time.Millisecond)
		close(release)
	}()
	if body, err := readResponse(c); err != nil || body != "done /block" {
		t.Fatalf("%q %v", body, err)
	}
}

// TestRunInlineNeedsOneProc: with more processors RunInline declines.
func TestRunInlineNeedsOneProc(t *testing.T) {
	if runtime.GOMAXPROCS(0) == 1 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	var inline atomic.Int32
	ts := startServer(t, Config{}, inlineHandler(nil, nil, &inline))
	c := ts.dial(t)
	c.send("GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
	if body, err := readResponse(c); err != nil || body != "done /x" {
		t.Fatalf("%q %v", body, err)
	}
	if inline.Load() != 0 {
		t.Fatal("ran inline with GOMAXPROCS > 1")
	}
}

// TestRunInlineBusyWork: work that computes for a long time without
// blocking is preempted by the scheduler, and the standby takes the loop
// over then: another client is answered long before the work ends.
func TestRunInlineBusyWork(t *testing.T) {
	onOneProc(t)
	const spin = 500 * time.Millisecond
	spinning := make(chan struct{})
	ts := startServer(t, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		busy := r.Target() == "/busy"
		if !w.RunInline(func() {
			if busy {
				close(spinning)
				for end := time.Now().Add(spin); time.Now().Before(end); {
				}
			}
			_, _ = w.WriteString("done")
			w.End()
		}) {
			t.Error("RunInline declined")
		}
	}))
	b := ts.dial(t)
	b.send("GET /busy HTTP/1.1\r\nHost: a\r\n\r\n")
	<-spinning
	start := time.Now()
	c := ts.dial(t)
	c.send("GET /free HTTP/1.1\r\nHost: a\r\n\r\n")
	if body, err := readResponse(c); err != nil || body != "done" {
		t.Fatalf("%q %v", body, err)
	}
	if took := time.Since(start); took > spin/2 {
		t.Errorf("answered after %v, while work computed for %v on the loop", took, spin)
	}
	if body, err := readResponse(b); err != nil || body != "done" {
		t.Fatalf("busy: %q %v", body, err)
	}
}

// TestRunInlineServeReturnsWhileWorkBlocks: Serve returns once its loop
// has ended even while inline work it ran still blocks (as the handler of
// a hijacked connection may, for hours), and the work finishes later.
func TestRunInlineServeReturnsWhileWorkBlocks(t *testing.T) {
	onOneProc(t)
	release := make(chan struct{})
	started := make(chan string, 1)
	var inline atomic.Int32
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	srv := NewServer(Config{}, inlineHandler(release, started, &inline))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve([]int{fd}) }()
	c := (&testServer{Server: srv, addr: addr}).dial(t)
	c.send("GET /block HTTP/1.1\r\nHost: a\r\n\r\n")
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = srv.Shutdown(ctx) // the blocked response keeps its connection: forced
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("Serve did not return while inline work blocked")
	}
	close(release)
	if inline.Load() != 1 {
		t.Fatalf("%d requests ran inline", inline.Load())
	}
}
