package httpcore

import (
	"bytes"
	"io"
	"strconv"
	"testing"
	"time"
)

// TestAsyncWriterWhileHandlerRuns: a goroutine that writes an asynchronous
// response while the handler that started it is still running on the loop
// must hand its bytes to the loop, not write the connection's output
// itself: the response arrives whole, its head once.
func TestAsyncWriterWhileHandlerRuns(t *testing.T) {
	const size = 1 << 20
	body := bytes.Repeat([]byte("0123456789abcdef"), size/16)
	ts := startServer(t, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.SetHeader("Content-Length", strconv.Itoa(size))
		w.Async()
		go func() {
			for rest := body; len(rest) > 0; rest = rest[min(len(rest), 32<<10):] {
				if _, err := w.Write(rest[:min(len(rest), 32<<10)]); err != nil {
					break
				}
			}
			w.End()
		}()
		time.Sleep(20 * time.Millisecond) // the writer runs meanwhile
	}))
	client := ts.httpClient(t)
	for i := range 10 {
		resp, err := client.Get("http://" + ts.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil || !bytes.Equal(got, body) {
			at := 0
			for at < min(len(got), len(body)) && got[at] == body[at] {
				at++
			}
			t.Fatalf("request %d: %d bytes, %v; first difference at %d: %.80q", i, len(got), err, at, got[at:min(at+80, len(got))])
		}
	}
}
