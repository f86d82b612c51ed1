package tlsconn

import (
	"bufio"
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"github.com/clusterd/clusterd/httpcore"
)

// BenchmarkKeepAlive measures requests over kept-alive TLS connections,
// through the socket pair to the loop and back.
func BenchmarkKeepAlive(b *testing.B) {
	h := newHarness(b, httpcore.Config{})
	cfg := &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost", NextProtos: []string{"http/1.1"}}
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := tls.Dial("tcp", h.addr, cfg)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
		}
	})
}
