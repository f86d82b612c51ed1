package httpcore

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// streamHandler serves the native streaming cases:
//
//	/stream?n=N[&cl=L][&sync=1]  N bytes in 1000-byte writes, from a goroutine
//	                             after Async (on the loop with sync=1); cl sets
//	                             Content-Length; Write errors go to errs
//	/flush                       "head;" Flush "tail", on the loop
//	/file?off=O&n=N[&code=C]     SendFile of file, on the loop
//	/afile?off=O&n=N             the same from a goroutine after Async
func streamHandler(file string, errs chan<- error) Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		n, _ := strconv.Atoi(r.Query("n"))
		switch r.Path() {
		case "/stream":
			cl, onLoop := strings.Clone(r.Query("cl")), r.Query("sync") == "1"
			write := func() {
				if cl != "" {
					w.SetHeader("Content-Length", cl)
				}
				reportErr(errs, writePieces(w, bigBody(n), 1000))
				w.End()
			}
			w.Async()
			if onLoop {
				write()
			} else {
				go write()
			}
		case "/flush":
			w.WriteString("head;")
			reportErr(errs, w.Flush())
			w.WriteString("tail")
		case "/file", "/afile":
			serveFile(w, r, file, errs)
		default:
			w.WriteString("Hello World\n")
		}
	})
}

func serveFile(w *ResponseWriter, r *Request, name string, errs chan<- error) {
	off, _ := strconv.ParseInt(r.Query("off"), 10, 64)
	n, _ := strconv.ParseInt(r.Query("n"), 10, 64)
	if code, _ := strconv.Atoi(r.Query("code")); code != 0 {
		w.WriteHeader(code)
	}
	f, err := os.Open(name)
	if err != nil {
		reportErr(errs, err)
		return
	}
	if r.Path() == "/file" {
		reportErr(errs, w.SendFile(f, off, n))
		return
	}
	w.Async()
	go func() {
		reportErr(errs, w.SendFile(f, off, n))
		w.End()
	}()
}

func writePieces(w *ResponseWriter, b []byte, piece int) error {
	var first error
	for i := 0; i < len(b); i += piece {
		if _, err := w.Write(b[i:min(i+piece, len(b))]); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func reportErr(errs chan<- error, err error) {
	if err != nil && errs != nil {
		select {
		case errs <- err:
		default:
		}
	}
}

func TestStreamedResponses(t *testing.T) {
	const n = 200000
	tests := []struct {
		name, req string
		te        string // Transfer-Encoding of the response
		cl        int64  // Content-Length, -1 for none
		body      string
		close     bool  // the server closes after the response
		short     bool  // the body ends early: reading it fails
		writeErr  error // the handler's Write error
	}{
		{name: "async chunked", req: "GET /stream?n=200000 HTTP/1.1\r\nHost: a\r\n\r\n",
			te: "chunked", cl: -1, body: string(bigBody(n))},
		{name: "async small is buffered", req: "GET /stream?n=1000 HTTP/1.1\r\nHost: a\r\n\r\n",
			cl: 1000, body: string(bigBody(1000))},
		{name: "async on the loop", req: "GET /stream?n=200000&sync=1 HTTP/1.1\r\nHost: a\r\n\r\n",
			te: "chunked", cl: -1, body: string(bigBody(n))},
		{name: "handler content-length", req: "GET /stream?n=200000&cl=200000 HTTP/1.1\r\nHost: a\r\n\r\n",
			cl: n, body: string(bigBody(n))},
		{name: "content-length too large closes", req: "GET /stream?n=200000&cl=300000 HTTP/1.1\r\nHost: a\r\n\r\n",
			cl: 300000, short: true, close: true},
		{name: "writes beyond content-length fail", req: "GET /stream?n=200000&cl=100000 HTTP/1.1\r\nHost: a\r\n\r\n",
			cl: 100000, body: string(bigBody(100000)), writeErr: ErrContentLength},
		{name: "HTTP/1.0 close-delimited", req: "GET /stream?n=200000 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
			cl: -1, body: string(bigBody(n)), close: true},
		{name: "flush on the loop", req: "GET /flush HTTP/1.1\r\nHost: a\r\n\r\n",
			te: "chunked", cl: -1, body: "head;tail"},
		{name: "HEAD counts, never streams", req: "HEAD /stream?n=200000 HTTP/1.1\r\nHost: a\r\n\r\n", cl: n},
	}
	errs := make(chan error, 1)
	ts := startServer(t, Config{}, streamHandler("", errs))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			c.send(tt.req + "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			method, _, _ := strings.Cut(tt.req, " ")
			resp, body, err := readRaw(c, method)
			if te := strings.Join(resp.TransferEncoding, ","); te != tt.te || resp.ContentLength != tt.cl {
				t.Fatalf("Transfer-Encoding %q Content-Length %d, want %q %d", te, resp.ContentLength, tt.te, tt.cl)
			}
			if tt.short {
				if err == nil {
					t.Fatalf("short body read without error")
				}
			} else if err != nil || body != tt.body {
				t.Fatalf("body %d bytes (%v), want %d", len(body), err, len(tt.body))
			}
			checkWriteErr(t, errs, tt.writeErr)
			if tt.close {
				if !tt.short && !resp.Close {
					t.Errorf("no Connection: close")
				}
				c.expectClosed()
			} else if r := c.read("GET"); r.body != "Hello World\n" {
				t.Fatalf("pipelined response %q", r.body)
			}
		})
	}
}

// readRaw reads a response and its body, returning the body read error.
func readRaw(c *clientConn, method string) (response, string, error) {
	c.t.Helper()
	resp, err := readResp(c, method)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	return response{resp, string(b)}, string(b), err
}

func checkWriteErr(t *testing.T, errs chan error, want error) {
	t.Helper()
	var got error
	select {
	case got = <-errs:
	case <-time.After(time.Duration(btoi(want != nil)) * time.Second):
	}
	if !errors.Is(got, want) {
		t.Fatalf("handler error %v, want %v", got, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSendFile(t *testing.T) {
	const size = 300000
	name := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(name, bigBody(size), 0o600); err != nil {
		t.Fatal(err)
	}
	whole := string(bigBody(size))
	tests := []struct {
		name, req string
		status    int
		cl        int64
		body      string
		close     bool
	}{
		{"whole", "GET /file?n=300000 HTTP/1.1", 200, size, whole, false},
		{"range", "GET /file?off=1000&n=5000 HTTP/1.1", 200, 5000, whole[1000:6000], false},
		{"empty", "GET /file?n=0 HTTP/1.1", 200, 0, "", false},
		{"async", "GET /afile?off=7&n=250000 HTTP/1.1", 200, 250000, whole[7:250007], false},
		{"HEAD", "HEAD /file?n=300000 HTTP/1.1", 200, size, "", false},
		{"204", "GET /file?n=300000&code=204 HTTP/1.1", 204, 0, "", false},
		{"HTTP/1.0", "GET /file?off=10&n=100 HTTP/1.0", 200, 100, whole[10:110], true},
		{"file too short", "GET /file?off=299000&n=5000 HTTP/1.1", 200, 5000, "", true},
	}
	ts := startServer(t, Config{}, streamHandler(name, nil))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ts.dial(t)
			c.send(tt.req + "\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
			method, _, _ := strings.Cut(tt.req, " ")
			resp, body, err := readRaw(c, method)
			if resp.StatusCode != tt.status || resp.ContentLength != tt.cl {
				t.Fatalf("status %d length %d, want %d %d", resp.StatusCode, resp.ContentLength, tt.status, tt.cl)
			}
			if _, ok := resp.Header["Content-Length"]; ok == (tt.status == 204) {
				t.Fatalf("Content-Length field %q for a %d", resp.Header.Get("Content-Length"), tt.status)
			}
			if tt.name == "file too short" {
				if err == nil || len(body) != 1000 {
					t.Fatalf("short file: %d bytes, %v", len(body), err)
				}
			} else if err != nil || body != tt.body {
				t.Fatalf("body %d bytes (%v), want %d", len(body), err, len(tt.body))
			}
			if tt.close {
				c.expectClosed()
			} else if r := c.read("GET"); r.body != "Hello World\n" {
				t.Fatalf("pipelined response %q", r.body)
			}
		})
	}
}

func TestSendFileMisuse(t *testing.T) {
	name := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(name, []byte("file body"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []error
	var files []*os.File
	h := HandlerFunc(func(w *ResponseWriter, r *Request) {
		mu.Lock()
		defer mu.Unlock()
		f1, _ := os.Open(name)
		files = append(files, f1)
		if r.Path() == "/write-first" {
			w.WriteString("x")
			got = append(got, w.SendFile(f1, 0, 4))
			return
		}
		f2, _ := os.Open(name)
		files = append(files, f2)
		got = append(got, w.SendFile(f1, 0, 4))
		_, err := w.WriteString("more")
		got = append(got, err, w.SendFile(f2, 0, 4))
	})
	ts := startServer(t, Config{}, h)
	c := ts.dial(t)
	c.send("GET /write-first HTTP/1.1\r\nHost: a\r\n\r\nGET /file HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := c.read("GET"); r.body != "x" {
		t.Fatalf("write then SendFile: %q", r.body)
	}
	if r := c.read("GET"); r.body != "file" {
		t.Fatalf("SendFile then write: %q", r.body)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, err := range got {
		if want := []error{ErrBodyStarted, nil, ErrBodyStarted, ErrBodyStarted}[i]; !errors.Is(err, want) {
			t.Errorf("call %d: %v, want %v", i, err, want)
		}
	}
	for _, f := range files { // refused files are closed at once, a sent one once sent
		waitFor(t, func() bool { _, err := f.Stat(); return errors.Is(err, os.ErrClosed) })
	}
}

func TestAsyncWriterBackpressure(t *testing.T) {
	const total = 8 << 20
	h := newHarness(t, Config{}, nil)
	defer h.close()
	var written int64
	var mu sync.Mutex
	done := make(chan error, 1)
	h.l.h = HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		go func() {
			b := make([]byte, 32<<10)
			for i := 0; i < total; i += len(b) {
				if _, err := w.Write(b); err != nil {
					done <- err
					return
				}
				mu.Lock()
				written += int64(len(b))
				mu.Unlock()
			}
			w.End()
			done <- nil
		}()
	})
	h.noRead = true
	h.feed([]byte(get))
	for range 20 { // let the writer run into the high-water mark
		time.Sleep(5 * time.Millisecond)
		h.run()
	}
	mu.Lock()
	stalled := written
	mu.Unlock()
	if stalled >= 2<<20 {
		t.Fatalf("writer got %d bytes out to a client that reads nothing", stalled)
	}
	t.Logf("writer stalled after %d KiB; %d KiB pending on the connection", stalled>>10, h.c.pendingOut()>>10)
	h.noRead = false
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		h.run()
		if bytes.HasSuffix(h.out, []byte("\r\n0\r\n\r\n")) || time.Now().After(deadline) {
			break
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(h.out) < total {
		t.Fatalf("client got %d bytes, want more than %d", len(h.out), total)
	}
}

// TestLoopWritesNeverWait writes far more than streamHighWater to
// asynchronous responses on the loop goroutine, in ServeHTTP after Async
// and in a posted function, to a client that reads nothing: the writes
// must not wait for room, which only the loop itself could make.
func TestLoopWritesNeverWait(t *testing.T) {
	const n = 4 * streamHighWater
	h := newHarness(t, Config{}, nil)
	defer h.close()
	h.l.h = HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		write := func() {
			if _, err := w.Write(bigBody(n)); err != nil {
				t.Errorf("write: %v", err)
			}
			w.End()
		}
		if r.Path() == "/post" {
			h.l.s.Post(write)
			return
		}
		write()
	})
	h.noRead = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		h.feed([]byte("GET /serve HTTP/1.1\r\nHost: a\r\n\r\nGET /post HTTP/1.1\r\nHost: a\r\n\r\n"))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		panic("a write on the loop goroutine waits for room")
	}
	h.noRead = false
	h.run()
	checkEchoes(t, h.out, bigBody(n), bigBody(n))
}

// TestBackpressureWhileAnotherHandlerRuns has a goroutine write a large
// asynchronous response to a client that reads nothing while the loop runs
// another request's handler after Async. Only that handler's own writes
// may skip waiting for room: this writer must stop near streamHighWater.
func TestBackpressureWhileAnotherHandlerRuns(t *testing.T) {
	const (
		total = 8 << 20
		bound = 1 << 20
		hold  = 200 * time.Millisecond
	)
	var written, duringHold atomic.Int64
	dispatched, start := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	ts := startServer(t, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		if r.Path() == "/hold" { // on the loop: let the writer run meanwhile
			close(start)
			for t0 := time.Now(); time.Since(t0) < hold && written.Load() < bound; {
				time.Sleep(time.Millisecond)
			}
			duringHold.Store(written.Load())
			w.End()
			return
		}
		close(dispatched)
		go func() {
			<-start
			b := make([]byte, 32<<10)
			for written.Load() < total {
				if _, err := w.Write(b); err != nil {
					break
				}
				written.Add(int64(len(b)))
			}
			w.End()
			done <- nil
		}()
	}))
	slow := ts.dial(t)
	slow.send("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
	<-dispatched
	other := ts.dial(t)
	other.send("GET /hold HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := other.read("GET"); r.StatusCode != 200 {
		t.Fatalf("/hold: status %d", r.StatusCode)
	}
	if n := duringHold.Load(); n >= bound {
		t.Fatalf("the writer handed on %d KiB while another handler ran on the loop", n>>10)
	}
	slow.Close() // the writer fails and ends
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the writer did not end after its client left")
	}
}
