package tlsconn

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testcert"
	"github.com/clusterd/clusterd/nethttp"
)

// harness serves a native handler over TLS on a loopback port.
type harness struct {
	addr string
	cert *testcert.Cert
	loop *httpcore.Server
	tls  *Server
}

func hello(w *httpcore.ResponseWriter, r *httpcore.Request) {
	_, _ = w.WriteString("Hello World from " + r.RemoteAddr() + "\n")
}

func newHarness(t testing.TB, hc httpcore.Config) *harness {
	return newHarnessWith(t, hc, httpcore.HandlerFunc(hello))
}

func newHarnessWith(t testing.TB, hc httpcore.Config, handler httpcore.Handler) *harness {
	t.Helper()
	cert, err := testcert.New("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	loop := httpcore.NewServer(hc, handler)
	served := make(chan error, 1)
	go func() { served <- loop.Serve(nil) }()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{addr: ln.Addr().String(), cert: cert, loop: loop,
		tls: New(Config{TLS: &tls.Config{Certificates: []tls.Certificate{kp}}, HTTP: hc}, loop)}
	accepting := make(chan error, 1)
	go func() { accepting <- h.tls.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.tls.Shutdown(ctx); err != nil {
			t.Errorf("tls shutdown: %v", err)
		}
		if err := loop.Shutdown(ctx); err != nil {
			t.Errorf("loop shutdown: %v", err)
		}
		if err := <-accepting; err != ErrServerClosed {
			t.Errorf("Serve returned %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("loop Serve returned %v", err)
		}
	})
	return h
}

func (h *harness) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: h.cert.Pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestHelloOverHTTP1AndHTTP2(t *testing.T) {
	h := newHarness(t, httpcore.Config{})
	for _, tc := range []struct {
		h2    bool
		proto string
	}{{false, "HTTP/1.1"}, {true, "HTTP/2.0"}} {
		c := h.client(tc.h2)
		for i := range 3 { // the second and third reuse the connection
			resp, err := c.Get("https://" + h.addr + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.Proto != tc.proto || resp.StatusCode != 200 || resp.TLS == nil {
				t.Fatalf("%d: got %s %d, want %s 200 over TLS", i, resp.Proto, resp.StatusCode, tc.proto)
			}
			if !strings.HasPrefix(string(body), "Hello World from 127.0.0.1:") {
				t.Fatalf("%s: body %q does not name the client's address", tc.proto, body)
			}
		}
		c.CloseIdleConnections()
	}
}

func TestOffersTLS12And13(t *testing.T) {
	h := newHarness(t, httpcore.Config{})
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost",
			MinVersion: v, MaxVersion: v, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatalf("version %x: %v", v, err)
		}
		st := c.ConnectionState()
		if st.Version != v || st.NegotiatedProtocol != ProtoH2 {
			t.Errorf("got version %x ALPN %q, want %x h2", st.Version, st.NegotiatedProtocol, v)
		}
		c.Close()
	}
	// TLS 1.1 is refused.
	if c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.cert.Pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("a TLS 1.1 handshake succeeded")
	}
}

// A client that closes after its request gets the whole response, and
// pipelined requests are answered in order.
func TestPipelinedHTTP1(t *testing.T) {
	h := newHarness(t, httpcore.Config{})
	c, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := "GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	for i := range 2 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("response %d: %d", i, resp.StatusCode)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := br.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after Connection: close: read %d, %v; want EOF", n, err)
	}
}

// A net/http Handler (as RunHTTP serves it) works over HTTP/1.1 and HTTP/2,
// request bodies and streamed responses included.
func TestNetHTTPHandlerOverTLS(t *testing.T) {
	h := newHarnessWith(t, httpcore.Config{}, nethttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Remote", r.RemoteAddr)
		for i := range 3 {
			fmt.Fprintf(w, "%s %s %d %s\n", r.Method, r.URL.Path, i, body)
			http.NewResponseController(w).Flush()
		}
	}), nethttp.Config{}))
	for _, h2 := range []bool{false, true} {
		c := h.client(h2)
		big := strings.Repeat("x", 100<<10) // several TLS records and socket buffers
		resp, err := c.Post("https://"+h.addr+"/up", "text/plain", strings.NewReader(big))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := ""
		for i := range 3 {
			want += fmt.Sprintf("POST /up %d %s\n", i, big)
		}
		if string(got) != want || !strings.HasPrefix(resp.Header.Get("X-Remote"), "127.0.0.1:") {
			t.Errorf("h2 %v: %s, %d bytes, X-Remote %q", h2, resp.Proto, len(got), resp.Header.Get("X-Remote"))
		}
		c.CloseIdleConnections()
	}
}
