package httpcore

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// chromeRequest is what Chrome sends for a navigation.
const chromeRequest = "GET /docs/index.html?lang=en HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"Connection: keep-alive\r\n" +
	"sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n" +
	"sec-ch-ua-mobile: ?0\r\n" +
	"sec-ch-ua-platform: \"Linux\"\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n" +
	"Sec-Fetch-Site: none\r\n" +
	"Sec-Fetch-Mode: navigate\r\n" +
	"Sec-Fetch-User: ?1\r\n" +
	"Sec-Fetch-Dest: document\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Accept-Language: en-US,en;q=0.9\r\n" +
	"Cookie: session=0123456789abcdef; theme=dark\r\n" +
	"\r\n"

func BenchmarkParseBrowserRequest(b *testing.B) {
	in := []byte(chromeRequest)
	r := newRequest()
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := r.parseHead(in, &testLimits); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServeBatch measures the engine without the network: 16
// pipelined requests served and written to a socketpair per iteration.
func BenchmarkServeBatch(b *testing.B) {
	h := newHarness(b, Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.SetHeader("Content-Type", "text/plain")
		w.WriteString("Hello World\n")
	}))
	defer h.close()
	var batch []byte
	for range 16 {
		batch = append(batch, chromeRequest...)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		h.feed(batch)
		h.out = h.out[:0]
	}
}

// BenchmarkServeHelloLoopback is one request-response round trip over TCP
// loopback per iteration.
func BenchmarkServeHelloLoopback(b *testing.B) {
	ts := startServer(b, Config{}, testHandler())
	benchHello(b, ts.addr)
}

// benchHello makes one "GET /" round trip to addr per iteration on one
// keep-alive connection; the reply must be "Hello World\n".
func benchHello(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	want := len("Hello World\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := skipResponse(br, want); err != nil {
			b.Fatal(err)
		}
	}
}

// skipResponse reads a response head and a body of n bytes.
func skipResponse(br *bufio.Reader, n int) error {
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) == 2 {
			break
		}
	}
	_, err := io.CopyN(io.Discard, br, int64(n))
	return err
}

// BenchmarkStatusLine appends the status lines of a few common responses.
func BenchmarkStatusLine(b *testing.B) {
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		for _, code := range [...]int{200, 404, 304, 500} {
			buf = appendStatusLine(buf[:0], code)
		}
	}
}
