package tlsconn

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/nethttp"
)

// heldConn holds back what the client writes after its first flight until
// it writes again: the client's Finished then reaches the server in one
// segment with the request, which the handshake reads along.
type heldConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
	held   []byte
}

func (c *heldConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	if c.writes == 2 { // the client's second flight: ChangeCipherSpec, Finished
		c.held = append(c.held, p...)
		return len(p), nil
	}
	if len(c.held) > 0 {
		p = append(c.held, p...)
		c.held = nil
	}
	if _, err := c.Conn.Write(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// A request that came with the end of the handshake, read by it, is
// served: the loop decodes what crypto/tls took in before the hand-over.
func TestRequestReadWithHandshake(t *testing.T) {
	h := newHarness(t, httpcore.Config{})
	raw, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(&heldConn{Conn: raw}, &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost",
		MinVersion: tls.VersionTLS13, NextProtos: []string{ProtoHTTP}})
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(b), "Hello World from 127.0.0.1:") {
		t.Errorf("%q", b)
	}
}

// A response far larger than the socket buffers reaches a client that
// reads slowly, and a hijacked connection (a WebSocket through the
// net/http adapter) keeps speaking TLS, on both protocol versions.
func TestLargeResponseAndHijack(t *testing.T) {
	big := strings.Repeat("0123456789", 400_000) // 4 MB
	h := newHarnessWith(t, httpcore.Config{}, nethttp.New(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/upgrade" {
			_, _ = io.WriteString(w, big)
			return
		}
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer nc.Close()
		_, _ = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
		line, _ := brw.ReadString('\n')
		_, _ = io.WriteString(nc, "echo "+line)
	}), nethttp.Config{}))
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		tc, err := tls.Dial("tcp", h.addr, &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost",
			MinVersion: v, MaxVersion: v, NextProtos: []string{ProtoHTTP}})
		if err != nil {
			t.Fatal(err)
		}
		_ = tc.SetDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReader(tc)
		_, _ = io.WriteString(tc, "GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
		time.Sleep(100 * time.Millisecond) // the server fills the socket buffers
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || string(b) != big {
			t.Fatalf("TLS %x: %d bytes of %d, %v", v, len(b), len(big), err)
		}
		_, _ = io.WriteString(tc, "GET /upgrade HTTP/1.1\r\nHost: a\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhello\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("TLS %x: upgrade: %v %v", v, resp, err)
		}
		line, err := br.ReadString('\n')
		if line != "echo hello\n" {
			t.Fatalf("TLS %x: after the upgrade: %q, %v", v, line, err)
		}
		tc.Close()
	}
}

// recordTypes records the TLS record types a client receives (TLS 1.2
// shows alerts as such; TLS 1.3 hides them in application data).
type recordTypes struct {
	net.Conn
	buf   []byte
	types []byte
}

func (c *recordTypes) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.buf = append(c.buf, p[:n]...)
	for len(c.buf) >= 5 {
		l := 5 + int(c.buf[3])<<8 + int(c.buf[4])
		if len(c.buf) < l {
			break
		}
		c.types = append(c.types, c.buf[0])
		c.buf = c.buf[l:]
	}
	return n, err
}

// After a last response the server ends the session with close_notify, so
// the client can tell a complete response from a cut one.
func TestCloseNotifyAfterLastResponse(t *testing.T) {
	h := newHarness(t, httpcore.Config{})
	raw, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	rt := &recordTypes{Conn: raw}
	tc := tls.Client(rt, &tls.Config{RootCAs: h.cert.Pool, ServerName: "localhost",
		MaxVersion: tls.VersionTLS12, NextProtos: []string{ProtoHTTP}})
	defer tc.Close()
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(tc)
	if err != nil || !strings.Contains(string(b), "Hello World") {
		t.Fatalf("%q, %v", b, err)
	}
	if n := len(rt.types); n == 0 || rt.types[n-1] != 21 { // alert
		t.Fatalf("record types received %v; want an alert (21) last", rt.types)
	}
}
