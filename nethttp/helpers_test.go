package nethttp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
)

// TestMain fails the run if goroutines running adapter or engine code, or
// file descriptors, outlive the tests.
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
	if code == 0 {
		code = onOneProc()
	}
	os.Exit(code)
}

// onOneProc runs the tests again with GOMAXPROCS 1, where handlers run
// on the loop's goroutine (httpcore.ResponseWriter.RunInline), unless
// this is that run or GOMAXPROCS is 1 already.
func onOneProc() int {
	const again = "NETHTTP_TEST_ONE_PROC"
	if os.Getenv(again) != "" || runtime.GOMAXPROCS(0) == 1 {
		return 0
	}
	var args []string
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-test.testlogfile") { // the go command's, for this run
			args = append(args, a)
		}
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), again+"=1", "GOMAXPROCS=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "with GOMAXPROCS=1:", err)
		return 1
	}
	return 0
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
// that run code of the adapter or the engine.
func leakedGoroutines() []string {
	buf := make([]byte, 1<<20)
	stacks := strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n")
	var leaked []string
	for _, g := range stacks[1:] { // stacks[0] is this goroutine
		if strings.Contains(g, "clusterd/httpcore.") || strings.Contains(g, "clusterd/nethttp.") {
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
	*httpcore.Server
	addr string
	errc chan error
}

// startNetHTTP serves h through the adapter on a loopback socket until the
// test ends, when it shuts the server down and checks that Serve returned
// nil.
func startNetHTTP(t testing.TB, cfg httpcore.Config, h http.Handler) *testServer {
	t.Helper()
	return startHandler(t, cfg, New(h, Config{}))
}

// startHandler serves a, an adapter, like startNetHTTP.
func startHandler(t testing.TB, cfg httpcore.Config, a *Handler) *testServer {
	t.Helper()
	fd, addr := listenLoopback(t)
	ts := &testServer{Server: httpcore.NewServer(cfg, a), addr: addr, errc: make(chan error, 1)}
	ts.RegisterOnShutdown(a.Shutdown)
	go func() { ts.errc <- ts.Serve([]int{fd}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := ts.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-ts.errc; err != nil {
			t.Errorf("Serve: %v", err)
		}
		unix.Close(fd)
	})
	return ts
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

// readResp reads a response head; its body is left to the caller.
func readResp(c *clientConn, method string) (*http.Response, error) {
	return http.ReadResponse(c.br, &http.Request{Method: method})
}

// httpClient returns a client for ts whose connections are closed when the
// test ends (TestMain counts descriptors).
func (ts *testServer) httpClient(t testing.TB) *http.Client {
	tr := &http.Transport{
		DialContext:        (&net.Dialer{}).DialContext,
		DisableCompression: true,
		MaxIdleConns:       16,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func (ts *testServer) url(path string) string { return "http://" + ts.addr + path }

// httpGet fetches url and returns the response with its body read.
func httpGet(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

// readHead reads a response head, up to the empty line, from a raw client.
func (c *clientConn) readHead() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read head: %v (so far %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String()
		}
	}
}

const mib = 1 << 20

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i%26)
	}
	return b
}

func isReset(err error) bool { return errors.Is(err, unix.ECONNRESET) }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
	}
}

// readResponse reads one GET response and returns its body.
func readResponse(c *clientConn) (string, error) {
	resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
	if err != nil {
		return "", err
	}
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

func closeFD(fd int) { _ = unix.Close(fd) }

// nullLog silences net/http's server log.
func nullLog() *log.Logger { return log.New(io.Discard, "", 0) }
