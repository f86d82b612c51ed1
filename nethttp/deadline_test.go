package nethttp

import (
	"errors"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
)

type result struct {
	err     error
	elapsed time.Duration
	n       int64
}

// TestReadDeadline: a body that stops arriving fails the handler's Read
// at the deadline set with http.ResponseController, and the handler can
// still answer.
func TestReadDeadline(t *testing.T) {
	got := make(chan result, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := http.NewResponseController(w).SetReadDeadline(start.Add(150 * time.Millisecond)); err != nil {
			got <- result{err: err}
			return
		}
		n, err := io.Copy(io.Discard, r.Body)
		got <- result{err, time.Since(start), n}
		w.WriteHeader(http.StatusRequestTimeout)
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nab")
	res := <-got
	switch {
	case !errors.Is(res.err, os.ErrDeadlineExceeded):
		t.Fatalf("Read: %v, want a deadline error", res.err)
	case res.n != 2:
		t.Fatalf("read %d bytes before the deadline, want 2", res.n)
	case res.elapsed < 100*time.Millisecond || res.elapsed > 2*time.Second:
		t.Fatalf("deadline fired after %v, want about 150ms", res.elapsed)
	}
	if r := c.read("POST"); r.StatusCode != http.StatusRequestTimeout || !r.Close {
		t.Fatalf("response %d close %v", r.StatusCode, r.Close)
	}

	// A body that arrives before the deadline is read whole.
	c = ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc")
	if res := <-got; res.err != nil || res.n != 3 {
		t.Fatalf("a body in time: %d bytes, %v", res.n, res.err)
	}
}

// TestWriteDeadline: a client that does not read makes the handler's
// Write fail at the deadline, and the connection is closed.
func TestWriteDeadline(t *testing.T) {
	got := make(chan result, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if err := http.NewResponseController(w).SetWriteDeadline(start.Add(200 * time.Millisecond)); err != nil {
			got <- result{err: err}
			return
		}
		piece := make([]byte, 64<<10)
		var n int64
		for n < 1<<30 {
			k, err := w.Write(piece)
			n += int64(k)
			if err != nil {
				got <- result{err, time.Since(start), n}
				return
			}
		}
		got <- result{nil, time.Since(start), n}
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n") // and never read
	var res result
	select {
	case res = <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("the write deadline did not fire")
	}
	switch {
	case !errors.Is(res.err, os.ErrDeadlineExceeded):
		t.Fatalf("Write: %v after %d bytes, want a deadline error", res.err, res.n)
	case res.elapsed < 150*time.Millisecond || res.elapsed > 3*time.Second:
		t.Fatalf("deadline fired after %v, want about 200ms", res.elapsed)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
		t.Fatalf("connection not closed: %v", err)
	}
}
