package nethttp

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/httpcore"
)

// syncBuffer is a log sink safe for the loop and the handlers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestPanics checks that a handler panic is handled as net/http handles
// it: logged with its stack (http.ErrAbortHandler silently), the
// connection closed after what was flushed, nothing else sent, and the
// server serving on.
func TestPanics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Dropped", "1")
		io.WriteString(w, "unflushed")
		panic("boom")
	})
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		panic("after the head")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	var logs syncBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	ts := startNetHTTP(t, httpcore.Config{Logger: logger}, mux)

	c := ts.dial(t)
	c.send("GET /panic HTTP/1.1\r\nHost: a\r\n\r\nGET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expectClosed() // nothing of the response, nor of the pipelined one
	if l := logs.String(); !strings.Contains(l, "http: panic serving") || !strings.Contains(l, "boom") ||
		!strings.Contains(l, "panic_test.go") {
		t.Fatalf("panic not logged with its stack: %q", l)
	}

	before := logs.String()
	c = ts.dial(t)
	c.send("GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
	c.expectClosed()

	c = ts.dial(t)
	c.send("GET /late HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := readResp(c, "GET")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "partial" || err == nil {
		t.Fatalf("panic after flush: %d %q %v; want 200, the flushed part, then an error", resp.StatusCode, body, err)
	}
	if l := logs.String()[len(before):]; strings.Contains(l, "ErrAbortHandler") || strings.Contains(l, "abort") ||
		!strings.Contains(l, "after the head") {
		t.Fatalf("logs after the abort: %q", l)
	}

	for i := 0; i < 3; i++ { // the server goes on
		c = ts.dial(t)
		c.send("GET /ok HTTP/1.1\r\nHost: a\r\n\r\n")
		if r := c.read("GET"); r.StatusCode != 200 || r.body != "ok" {
			t.Fatalf("after panics: %d %q", r.StatusCode, r.body)
		}
	}
}
