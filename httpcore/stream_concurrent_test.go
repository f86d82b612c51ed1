package httpcore

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"
)

// patternBody is n bytes of lowercase letters that differ from one id to
// the next, so a byte that strays from another response, a head or another
// connection shows.
func patternBody(id, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i/7+id)%26)
	}
	return b
}

// TestConcurrentAsyncStreamsIntact streams large asynchronous responses,
// written from goroutines in 32 KiB pieces, to several slow readers at once
// while the loop also runs posted functions and handlers that go
// asynchronous: whenever the loop runs such user code, writers on other
// goroutines are at work too. Every byte of every response must arrive, in
// order, and nothing else.
func TestConcurrentAsyncStreamsIntact(t *testing.T) {
	const (
		conns  = 6
		rounds = 3
		size   = 1 << 20
		piece  = 32 << 10
	)
	ts := startServer(t, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		id, _ := strconv.Atoi(r.Query("id"))
		n, _ := strconv.Atoi(r.Query("n"))
		w.SetHeader("Content-Length", strconv.Itoa(n))
		w.Async()
		go func() {
			_ = writePieces(w, patternBody(id, n), piece) // an error means the client has gone
			w.End()
		}()
	}))
	stop := make(chan struct{})
	var busy sync.WaitGroup
	busy.Add(1)
	go func() { // keeps the loop running user code often
		defer busy.Done()
		for i := 0; i < 200000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			ts.Post(func() {
				for t0 := time.Now(); time.Since(t0) < 100*time.Microsecond; {
				}
			})
			time.Sleep(20 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, conns*rounds)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range rounds {
				id := i*rounds + round
				if err := fetchSlowly(ts, id, size+id); err != nil {
					errs <- fmt.Errorf("response %d: %w", id, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	busy.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// fetchSlowly asks ts for patternBody(id, n) and reads it in small pieces
// with pauses, checking every byte.
func fetchSlowly(ts *testServer, id, n int) error {
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /s?id=%d&n=%d HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", id, n)
	br := newReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 || resp.ContentLength != int64(n) {
		return fmt.Errorf("status %d, Content-Length %d, want 200, %d", resp.StatusCode, resp.ContentLength, n)
	}
	want := patternBody(id, n)
	got := make([]byte, 4<<10)
	for off := 0; off < n; off += len(got) {
		k := min(len(got), n-off)
		if _, err := io.ReadFull(resp.Body, got[:k]); err != nil {
			return fmt.Errorf("at byte %d of %d: %w", off, n, err)
		}
		if !bytes.Equal(got[:k], want[off:off+k]) {
			i := off
			for j := range k {
				if got[j] != want[off+j] {
					i = off + j
					break
				}
			}
			return fmt.Errorf("byte %d of %d differs: got %.40q, want %.40q", i, n, got[i-off:k], want[i:off+k])
		}
		if off%(64<<10) == 0 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	if extra, _ := io.ReadAll(br); len(extra) > 0 {
		return fmt.Errorf("%d bytes after the body: %.40q", len(extra), extra)
	}
	return nil
}
