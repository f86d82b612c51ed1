package httpcore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMain fails the run if goroutines running package code, or file
// descriptors, outlive the tests.
func TestMain(m *testing.M) {
	// Start the runtime's network poller (an epoll fd and an eventfd that
	// stay open) before counting descriptors.
	if ln, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
	}
	fds := countFDs()
	code := m.Run()
	if code == 0 {
		if err := checkLeaks(fds); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

func checkLeaks(fds int) error {
	var err error
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		leaked, f := leakedGoroutines(), countFDs()
		if len(leaked) == 0 && f <= fds {
			return nil
		}
		err = fmt.Errorf("leak: fds %d -> %d, goroutines:\n%s", fds, f, strings.Join(leaked, "\n\n"))
	}
	return err
}

// leakedGoroutines returns the stacks of goroutines, other than this one,
// that run code of this package.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	var leaked []string
	for _, g := range stacks[1:] { // stacks[0] is this goroutine
		if strings.Contains(g, "clusterd/httpcore.") {
			leaked = append(leaked, g)
		}
	}
	return leaked
}

func countFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// listenLoopback returns a listening TCP socket on 127.0.0.1 and its address.
func listenLoopback(t testing.TB) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 512); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd, "127.0.0.1:" + strconv.Itoa(sa.(*unix.SockaddrInet4).Port)
}

type testServer struct {
	*Server
	addr string
}

// startServer serves h on a loopback socket until the test ends, when it
// shuts the server down and checks that Serve returned nil.
func startServer(t testing.TB, cfg Config, h Handler) *testServer {
	t.Helper()
	fd, addr := listenLoopback(t)
	ts := &testServer{Server: NewServer(cfg, h), addr: addr}
	serveFD(t, ts.Server, fd)
	return ts
}

// serveFD serves srv on the listening socket fd until the test ends, when
// it shuts srv down, checks that Serve returned nil and closes fd.
func serveFD(t testing.TB, srv *Server, fd int) {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve([]int{fd}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		closeFD(fd)
	})
}

func (ts *testServer) dial(t testing.TB) *clientConn {
	t.Helper()
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return &clientConn{Conn: c, br: bufio.NewReader(c), t: t}
}

// clientConn is a raw HTTP/1.1 client connection for tests.
type clientConn struct {
	net.Conn
	br *bufio.Reader
	t  testing.TB
}

func (c *clientConn) send(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// response reads one response; method tells whether it has a body.
type response struct {
	*http.Response
	body string
}

func (c *clientConn) read(method string) response {
	c.t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("read body: %v", err)
	}
	return response{resp, string(body)}
}

// expectClosed checks that the server closes the connection with nothing
// more to read.
func (c *clientConn) expectClosed() {
	c.t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := c.br.ReadByte()
	if err == nil {
		rest, _ := c.br.Peek(c.br.Buffered())
		c.t.Fatalf("expected close, read %q", append([]byte{b}, rest...))
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, unix.ECONNRESET) {
		c.t.Fatalf("expected EOF, got %v", err)
	}
}

// testHandler is a small application for the tests.
func testHandler() Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		switch r.Path() {
		case "/":
			w.SetHeader("Content-Type", "text/plain")
			w.WriteString("Hello World\n")
		case "/echo":
			echo(w, r)
		case "/async":
			ms, _ := strconv.Atoi(r.Query("ms"))
			tag := strings.Clone(r.Query("tag"))
			w.Async()
			time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
				w.WriteString("async " + tag)
				w.End()
			})
		case "/big":
			n, _ := strconv.Atoi(r.Query("n"))
			w.Write(bigBody(n))
		case "/status":
			code, _ := strconv.Atoi(r.Query("code"))
			w.WriteHeader(code)
			w.WriteString("status body")
		case "/panic":
			panic("test panic")
		default:
			w.WriteHeader(404)
			w.WriteString("not found\n")
		}
	})
}

// echo writes back the request as text: method, target, headers, trailers,
// body.
func echo(w *ResponseWriter, r *Request) {
	fmt.Fprintf(w, "%s %s %s\n", r.Method(), r.Target(), r.Proto())
	r.VisitHeaders(func(name, value string) { fmt.Fprintf(w, "h %s: %s\n", name, value) })
	r.VisitTrailers(func(name, value string) { fmt.Fprintf(w, "t %s: %s\n", name, value) })
	fmt.Fprintf(w, "body %d %q\n", len(r.Body()), r.Body())
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func isReset(err error) bool { return errors.Is(err, unix.ECONNRESET) }

func closeFD(fd int) { _ = unix.Close(fd) }

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// readResponse reads one GET response and returns its body.
func readResponse(c *clientConn) (string, error) {
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// readResp reads a response head; its body is left to the caller.
func readResp(c *clientConn, method string) (*http.Response, error) {
	return http.ReadResponse(c.br, &http.Request{Method: method})
}
