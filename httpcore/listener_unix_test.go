package httpcore

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenUnix returns a listening Unix socket at path ("@name": abstract).
func listenUnix(t *testing.T, path string) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		closeFD(fd)
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		closeFD(fd)
		t.Fatal(err)
	}
	return fd
}

// TestUnixSocketRemoteAddr serves both handler APIs over Unix sockets, a
// path and an abstract name: requests are served, nothing assumes TCP, and
// RemoteAddr is "@" for a client socket with no name (as net/http says)
// or the client's own path when it has one.
func TestUnixSocketRemoteAddr(t *testing.T) {
	native := HandlerFunc(func(w *ResponseWriter, r *Request) { w.WriteString(r.RemoteAddr()) })
	// As the net/http adapter answers: off the loop, as a StreamingHandler.
	std := streamingFunc(func(w *ResponseWriter, r *Request) {
		addr := r.RemoteAddr()
		w.Async()
		go func() {
			w.WriteString(addr)
			w.End()
		}()
	})
	dir := t.TempDir()
	for _, tc := range []struct {
		name, path, client string
		h                  Handler
	}{
		{"native path", filepath.Join(dir, "a.sock"), "", native},
		{"native abstract", "@clusterd-test-" + filepath.Base(dir), "", native},
		{"streaming path", filepath.Join(dir, "b.sock"), "", std},
		{"named client", filepath.Join(dir, "c.sock"), filepath.Join(dir, "client.sock"), native},
	} {
		t.Run(tc.name, func(t *testing.T) {
			serveFD(t, NewServer(Config{}, tc.h), listenUnix(t, tc.path))
			var laddr *net.UnixAddr
			want := "@"
			if tc.client != "" {
				laddr, want = &net.UnixAddr{Name: tc.client, Net: "unix"}, tc.client
			}
			c, err := net.DialUnix("unix", laddr, &net.UnixAddr{Name: tc.path, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != want {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, want)
			}
		})
	}
}

// streamingFunc is a StreamingHandler made of a function.
type streamingFunc func(w *ResponseWriter, r *Request)

func (f streamingFunc) ServeHTTP(w *ResponseWriter, r *Request) { f(w, r) }
func (streamingFunc) StreamBodies()                             {}
