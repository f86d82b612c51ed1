package tlsconn

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"runtime"
	"testing"

	"github.com/clusterd/clusterd/httpcore"
)

// Memory per idle TLS connection in this process: server side (goroutines,
// crypto/tls state, the loop's connection) and the test's clients, so the
// figure is an upper bound; deploy/bench/tls.sh measures the worker alone.
func TestIdleConnMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 500 connections")
	}
	const n = 500
	h := newHarness(t, httpcore.Config{})
	cfg := &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	open := func(k int) []*tls.Conn {
		var cs []*tls.Conn
		for range k {
			c, err := tls.Dial("tcp", h.addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			cs = append(cs, c)
		}
		return cs
	}
	mem := func() (heap, stack uint64) {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc, m.StackInuse
	}
	warm := open(10)
	h0, s0 := mem()
	cs := open(n)
	h1, s1 := mem()
	heap, stack := int64(h1-h0)/n, int64(s1-s0)/n
	t.Logf("per idle TLS connection (server and client): heap %d B, stacks %d B", heap, stack)
	// crypto/tls state on both sides (about 7 KiB each, most of it the
	// handshake's buffers and two AES-GCM states) and the loop's
	// connection; no goroutine, no stack on the server side: about 14 KiB.
	// A goroutine or a buffer held per connection would pass 24 KiB.
	if heap+stack > 24<<10 {
		t.Errorf("%d bytes per idle TLS connection, want under 24 KiB", heap+stack)
	}
	for _, c := range append(warm, cs...) {
		c.Close()
	}
}
