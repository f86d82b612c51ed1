package nethttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testmem"
)

const smuggledReq = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

// TestRFC9112UnreadBodyNetHTTP covers a body the handler does not read,
// through the net/http adapter (the native API reads whole bodies before
// the handler runs, see TestRFC9112KeepAlive). RFC 9110 9.3 leaves a choice:
// read and discard the rest of the body, or close the connection. Either
// is accepted; what is not is parsing the unread body as requests, so every
// body here is made of requests.
func TestRFC9112UnreadBodyNetHTTP(t *testing.T) {
	var smuggled atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/smuggled":
			smuggled.Add(1)
		case "/ignore":
			io.WriteString(w, "ignored")
			return
		}
		io.WriteString(w, "Hello World\n")
	})
	ts := startNetHTTP(t, httpcore.Config{MaxBodyBytes: 1 << 20}, h)
	const post = "POST /ignore HTTP/1.1\r\nHost: a\r\n"
	big := strings.Repeat(smuggledReq, 200<<10/len(smuggledReq)) // over the 64 KiB pipe
	chunk := func(s string) string { return strconv.FormatInt(int64(len(s)), 16) + "\r\n" + s + "\r\n" }
	cases := []struct{ name, req string }{
		{"small Content-Length body", post + "Content-Length: " + strconv.Itoa(len(smuggledReq)) + "\r\n\r\n" + smuggledReq},
		{"large Content-Length body", post + "Content-Length: " + strconv.Itoa(len(big)) + "\r\n\r\n" + big},
		{"small chunked body", post + "Transfer-Encoding: chunked\r\n\r\n" + chunk(smuggledReq) + "0\r\n\r\n"},
		{"large chunked body", post + "Transfer-Encoding: chunked\r\n\r\n" + chunk(big[:100<<10]) + chunk(big[100<<10:]) + "0\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			sent := make(chan struct{})
			go func() { // the server may stop reading before all is sent
				defer close(sent)
				_, _ = io.WriteString(c, tc.req+"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			}()
			if r := c.read("GET"); r.StatusCode != 200 || r.body != "ignored" {
				t.Fatalf("response %d %q", r.StatusCode, r.body)
			} else if r.Close {
				c.expectClosed()
				t.Logf("unread body: Connection: close, then closed")
			} else {
				if r := c.read("GET"); r.body != "Hello World\n" {
					t.Fatalf("request after the unread body: %q", r.body)
				}
				t.Logf("unread body: discarded, connection kept")
			}
			c.Close()
			<-sent
			if n := smuggled.Load(); n != 0 {
				t.Fatalf("%d requests inside an unread body were served", n)
			}
		})
	}
}

// The memory test sends 100 MB to a client that reads 64 KiB per
// millisecond or so, far slower than the server could produce it, and
// samples the process heap (server and client) every 20 ms. Without
// backpressure the server would buffer most of the 100 MB.
const (
	bigTransfer = 100 << 20
	heapBound   = 32 << 20
	readPause   = time.Millisecond
)

func TestNetHTTPStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		piece := make([]byte, 32<<10)
		for sent := 0; sent < bigTransfer; sent += len(piece) {
			if _, err := w.Write(piece); err != nil {
				return
			}
		}
	})
	checkSlowTransfer(t, startNetHTTP(t, httpcore.Config{}, h), "net/http streamed (chunked)")
}

// checkSlowTransfer fetches bigTransfer bytes from ts with a slow reader and
// checks the heap stayed under heapBound.
func checkSlowTransfer(t *testing.T, ts *testServer, what string) {
	c := ts.dial(t)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	heap := testmem.StartHeapSampler()
	start := time.Now()
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := readResp(c, "GET")
	if err != nil {
		t.Fatal(err)
	}
	got, err := testmem.SlowRead(resp.Body, bigTransfer+1, readPause)
	elapsed := time.Since(start)
	base, peak := heap.Finish()
	if got != bigTransfer || err == nil {
		t.Fatalf("read %d bytes (%v), want %d then EOF", got, err, bigTransfer)
	}
	t.Logf("%s: %d MB to a slow reader in %v (%.0f MB/s); heap before %.1f MiB, peak %.1f MiB (+%.1f MiB)",
		what, got>>20, elapsed.Round(time.Millisecond), float64(got)/1e6/elapsed.Seconds(),
		float64(base)/mib, float64(peak)/mib, float64(peak-min(base, peak))/mib)
	if peak > base+heapBound {
		t.Fatalf("heap grew by %d MiB, bound %d MiB", (peak-base)>>20, heapBound>>20)
	}
}

// BenchmarkNetHTTPHello is one request-response round trip over loopback
// per iteration, a ServeMux handler run on the pool.
func BenchmarkNetHTTPHello(b *testing.B) {
	ts := startNetHTTP(b, httpcore.Config{}, helloMux())
	benchHello(b, ts.addr)
}

func helloMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "Hello World\n")
	})
	return mux
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

// BenchmarkStdHello is BenchmarkNetHTTPHello against net/http's own
// server, for the allocs/op beside the adapter's.
func BenchmarkStdHello(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: helloMux()}
	go srv.Serve(ln)
	defer srv.Close()
	benchHello(b, ln.Addr().String())
}
