package nethttp

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/clusterd/clusterd/httpcore"
)

func protoHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, r.Proto+" "+r.Method+" "+r.URL.Path+" "+string(body))
	})
}

func startH2C(t *testing.T) *testServer {
	return startHandler(t, httpcore.Config{}, New(protoHandler(), Config{H2C: true}))
}

// TestH2CPriorKnowledge: a client that starts with the HTTP/2 preface is
// served HTTP/2, many streams on one connection; HTTP/1.1 still works.
func TestH2CPriorKnowledge(t *testing.T) {
	ts := startH2C(t)
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	for i := 0; i < 20; i++ {
		resp, err := c.Post(ts.url("/p"), "text/plain", strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ProtoMajor != 2 || string(b) != "HTTP/2.0 POST /p body" {
			t.Fatalf("HTTP/2 response %d %s %q", resp.StatusCode, resp.Proto, b)
		}
	}
	if _, body := httpGet(t, ts.httpClient(t), ts.url("/one")); body != "HTTP/1.1 GET /one " {
		t.Fatalf("HTTP/1.1 beside h2c: %q", body)
	}
}

// TestH2CUpgrade: an HTTP/1.1 request with Upgrade: h2c gets 101, then its
// response as HTTP/2 stream 1.
func TestH2CUpgrade(t *testing.T) {
	ts := startH2C(t)
	c := ts.dial(t)
	c.send("GET /up HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" +
		"HTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	if head := c.readHead(); !strings.HasPrefix(head, "HTTP/1.1 101 Switching Protocols\r\n") ||
		!strings.Contains(head, "Upgrade: h2c\r\n") {
		t.Fatalf("head %q", head)
	}
	c.send(http2.ClientPreface)
	fr := http2.NewFramer(c, c.br)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	// The response comes in HTTP/2 frames; x/net/http2 hands the handler
	// the upgrade request as it was, HTTP/1.1.
	status, body := readStream1(t, fr)
	if status != "200" || body != "HTTP/1.1 GET /up " {
		t.Fatalf("stream 1: %s %q", status, body)
	}
}

// readStream1 reads frames until stream 1 ends and returns its status and
// body.
func readStream1(t *testing.T, fr *http2.Framer) (string, string) {
	t.Helper()
	var status string
	var body strings.Builder
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == ":status" {
			status = f.Value
		}
	})
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("read frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.HeadersFrame:
			if _, err := dec.Write(f.HeaderBlockFragment()); err != nil {
				t.Fatal(err)
			}
			if f.StreamEnded() {
				return status, body.String()
			}
		case *http2.DataFrame:
			body.Write(f.Data())
			if f.StreamEnded() {
				return status, body.String()
			}
		case *http2.GoAwayFrame:
			t.Fatalf("GOAWAY %v", f.ErrCode)
		}
	}
}

// TestH2CShutdown: a draining server sends GOAWAY to its HTTP/2
// connections, which then close, and Shutdown returns.
func TestH2CShutdown(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	a := New(protoHandler(), Config{H2C: true})
	srv := httpcore.NewServer(httpcore.Config{}, a)
	srv.RegisterOnShutdown(a.Shutdown)
	served := make(chan error, 1)
	go func() { served <- srv.Serve([]int{fd}) }()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(nc, http2.ClientPreface)
	fr := http2.NewFramer(nc, bufio.NewReader(nc))
	_ = fr.WriteSettings()
	waitFor(t, func() bool { return srv.HijackedConns() == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(ctx) }()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before the connection ended: %v", err)
		}
		if _, ok := f.(*http2.GoAwayFrame); ok {
			break
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			_ = fr.WriteSettingsAck()
		}
	}
	nc.Close() // the client goes, as a client given GOAWAY does when idle
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
