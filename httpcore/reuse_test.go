package httpcore

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// reusing is a ReusingHandler that ends every response from a goroutine,
// and records the writers it was given.
type reusing struct {
	mu      sync.Mutex
	writers map[*ResponseWriter]int
}

func (h *reusing) ReuseWriters() {}

func (h *reusing) ServeHTTP(w *ResponseWriter, r *Request) {
	h.mu.Lock()
	h.writers[w]++
	h.mu.Unlock()
	path := strings.Clone(r.Path())
	w.Async()
	if len(w.hdr) != 0 || w.status != 200 || len(w.body) != 0 {
		panic(fmt.Sprintf("%s: writer not reset: %d fields, status %d, %d body bytes", path, len(w.hdr), w.status, len(w.body)))
	}
	go func() {
		w.SetHeader("X-Path", path)
		if path == "/418" {
			w.WriteHeader(418)
		}
		_, _ = w.WriteString(path)
		w.End()
	}()
}

// TestReusingHandlerWriters: the writers of ended asynchronous responses
// are reused, each response starting afresh, pipelined or not.
func TestReusingHandlerWriters(t *testing.T) {
	h := &reusing{writers: map[*ResponseWriter]int{}}
	ts := startServer(t, Config{}, h)
	c := ts.dial(t)
	const n = 30
	var pipelined strings.Builder
	for i := range n {
		fmt.Fprintf(&pipelined, "GET /p%d HTTP/1.1\r\nHost: a\r\n\r\n", i)
	}
	c.send(pipelined.String())
	for i := 0; i < n; i += 3 {
		c.send("GET /418 HTTP/1.1\r\nHost: a\r\n\r\n")
	}
	for i := range n {
		resp := c.read("GET")
		want := fmt.Sprintf("/p%d", i)
		if resp.StatusCode != 200 || resp.body != want || resp.Header.Get("X-Path") != want {
			t.Fatalf("response %d: %d %q, X-Path %q", i, resp.StatusCode, resp.body, resp.Header.Get("X-Path"))
		}
	}
	for i := 0; i < n; i += 3 {
		resp := c.read("GET")
		if resp.StatusCode != 418 || resp.body != "/418" {
			t.Fatalf("response %d: %d %q", n+i/3, resp.StatusCode, resp.body)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.writers) >= n {
		t.Fatalf("%d writers for %d responses: none reused", len(h.writers), n+n/3)
	}
}
