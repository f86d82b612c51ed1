package httpcore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// frameCodec is a Codec for tests: each piece of data travels as a frame,
// a 2-byte length then the bytes XORed with 0x5a; a frame of length 0
// ends the input. Decode keeps an incomplete frame for the next call.
type frameCodec struct {
	held     []byte // bytes of an incomplete frame
	preload  []byte // decoded by the first Decode: taken in before adoption
	hijacked atomic.Bool
}

func encodeFrames(dst, p []byte) []byte {
	for len(p) > 0 {
		n := min(len(p), 1000)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
		for _, b := range p[:n] {
			dst = append(dst, b^0x5a)
		}
		p = p[n:]
	}
	return dst
}

func (f *frameCodec) Decode(dst, in []byte) ([]byte, error) {
	dst = append(dst, f.preload...)
	f.preload = nil
	f.held = append(f.held, in...)
	for len(f.held) >= 2 {
		n := int(binary.BigEndian.Uint16(f.held))
		if n == 0 {
			return dst, io.EOF
		}
		if len(f.held) < 2+n {
			break
		}
		for _, b := range f.held[2 : 2+n] {
			dst = append(dst, b^0x5a)
		}
		f.held = f.held[2+n:]
	}
	return dst, nil
}

func (f *frameCodec) Encode(dst, p []byte) ([]byte, error) { return encodeFrames(dst, p), nil }

// End sends the frame of length 0.
func (f *frameCodec) End(dst []byte) []byte { return append(dst, 0, 0) }

func (f *frameCodec) Hijack(nc net.Conn) net.Conn {
	f.hijacked.Store(true)
	return &frameConn{Conn: nc, codec: f}
}

// frameConn speaks frames over a net.Conn: the client side, and a hijacked
// server side.
type frameConn struct {
	net.Conn
	codec *frameCodec
	buf   []byte // decoded, not yet read
}

func (c *frameConn) Read(p []byte) (int, error) {
	for len(c.buf) == 0 {
		var in [4096]byte
		n, err := c.Conn.Read(in[:])
		c.buf, _ = c.codec.Decode(c.buf, in[:n])
		if len(c.buf) == 0 && err != nil {
			return 0, err
		}
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *frameConn) Write(p []byte) (int, error) {
	if _, err := c.Conn.Write(encodeFrames(nil, p)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// serveFramed hands s a TCP connection served through codec and returns
// the client's end, raw.
func serveFramed(t *testing.T, s *Server, codec *frameCodec) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	f, err := sc.(*net.TCPConn).File()
	sc.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ServeConnInfo(fd, ConnInfo{Codec: codec}); err != nil {
		closeFD(fd)
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

// Requests are decoded, split across frames and frames across writes,
// pipelined, and what the codec took in before adoption comes first;
// responses and file bodies are encoded; a decoded end of input ends the
// connection after the responses.
func TestCodecServes(t *testing.T) {
	dir := t.TempDir()
	file := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320 kB: several reads and writes
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, file, 0o600); err != nil {
		t.Fatal(err)
	}
	s := NewServer(Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		switch r.Path() {
		case "/file":
			f, err := os.Open(path)
			if err != nil {
				w.WriteHeader(500)
				return
			}
			if err := w.SendFile(f, 0, int64(len(file))); err != nil {
				f.Close()
				w.WriteHeader(500)
			}
		default:
			_, _ = w.WriteString("path " + r.Path() + "\n")
		}
	}))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }()
	defer func() {
		if err := s.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		<-errc
	}()

	codec := &frameCodec{preload: []byte("GET /first HTTP/1.1\r\nHost: a\r\n\r\n")}
	raw := serveFramed(t, s, codec)
	client := &frameConn{Conn: raw, codec: &frameCodec{}}
	br := bufio.NewReader(client)
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	readBody := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || string(b) != want {
			t.Fatalf("got %d bytes %.40q, %v; want %d bytes %.40q", len(b), b, err, len(want), want)
		}
	}
	readBody("path /first\n") // before the client sends anything
	enc := encodeFrames(nil, []byte("GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /file HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"))
	for i := 0; i < len(enc); i += 7 { // frames cut across writes
		if _, err := raw.Write(enc[i:min(i+7, len(enc))]); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	for _, want := range []string{"path /a\n", string(file), "path /b\n"} {
		readBody(want)
	}
	// The end of input, decoded: the connection closes.
	if _, err := raw.Write([]byte{0, 0}); err != nil {
		t.Fatal(err)
	}
	if n, err := raw.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("after the end of input: %d bytes, %v; want EOF", n, err)
	}
}

// Hijack returns the codec's net.Conn, after the output encoded before it;
// bytes read past the request come back decoded.
func TestCodecHijack(t *testing.T) {
	hijacked := make(chan error, 1)
	s := NewServer(Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) {
		w.Async()
		go func() {
			nc, rest, err := w.Hijack()
			if err != nil {
				hijacked <- err
				return
			}
			defer nc.Close()
			_, _ = io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\n\r\n")
			b := make([]byte, 5)
			n := copy(b, rest)
			if _, err := io.ReadFull(nc, b[n:]); err != nil {
				hijacked <- err
				return
			}
			_, _ = nc.Write(append([]byte("echo "), b...))
			hijacked <- nil
		}()
	}))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }()
	defer func() {
		_ = s.Shutdown(context.Background())
		<-errc
	}()
	codec := &frameCodec{}
	raw := serveFramed(t, s, codec)
	client := &frameConn{Conn: raw, codec: &frameCodec{}}
	if _, err := client.Write([]byte("GET /ws HTTP/1.1\r\nHost: a\r\n\r\nhe")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if _, err := client.Write([]byte("llo")); err != nil {
		t.Fatal(err)
	}
	if err := <-hijacked; err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(client)
	if want := "HTTP/1.1 101 Switching Protocols\r\n\r\necho hello"; string(b) != want || !codec.hijacked.Load() {
		t.Fatalf("got %q (codec hijacked: %v), want %q", b, codec.hijacked.Load(), want)
	}
}

// After a last response (Connection: close) the loop sends the codec's end
// of output before it shuts the connection down.
func TestCodecEndsOutput(t *testing.T) {
	s := NewServer(Config{}, HandlerFunc(func(w *ResponseWriter, r *Request) { _, _ = w.WriteString("bye\n") }))
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(nil) }()
	defer func() {
		_ = s.Shutdown(context.Background())
		<-errc
	}()
	raw := serveFramed(t, s, &frameCodec{})
	if _, err := raw.Write(encodeFrames(nil, []byte("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(raw)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := (&frameCodec{}).Decode(nil, b)
	if err != io.EOF || !bytes.HasSuffix(plain, []byte("\r\n\r\nbye\n")) || !bytes.HasSuffix(b, []byte{0, 0}) {
		t.Fatalf("got %q (%v), want the response then the end frame", b, err)
	}
}
