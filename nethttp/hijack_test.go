package nethttp

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
)

// lineEcho hijacks the connection and echoes lines until "quit" or EOF;
// it reports what Hijack returned in the first line: the bytes buffered.
func lineEcho(t *testing.T, errs chan<- error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Upgrade", "lines")
		w.Header().Set("Connection", "Upgrade")
		w.WriteHeader(http.StatusSwitchingProtocols)
		nc, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			errs <- err
			return
		}
		defer nc.Close()
		if _, err := w.Write([]byte("x")); !errors.Is(err, http.ErrHijacked) {
			errs <- errors.New("Write after Hijack: " + errString(err))
			return
		}
		brw.WriteString("buffered " + strconv.Itoa(brw.Reader.Buffered()) + "\n")
		brw.Flush()
		for {
			line, err := brw.ReadString('\n')
			if err != nil || line == "quit\n" {
				errs <- nil
				return
			}
			brw.WriteString("echo " + line)
			brw.Flush()
		}
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestHijack takes connections out of the loop, with bytes the client
// sent after the head in the same packet, after pipelined responses, and
// with the 101 head written as net/http writes it.
func TestHijack(t *testing.T) {
	errs := make(chan error, 8)
	mux := http.NewServeMux()
	mux.Handle("/lines", lineEcho(t, errs))
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello") })
	ts := startNetHTTP(t, httpcore.Config{}, mux)

	cases := []struct {
		name, before, extra string
		buffered            string
	}{
		{"alone", "", "", "0"},
		{"bytes after the head", "", "early\n", "6"},
		{"after a pipelined request", "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n", "", "0"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := ts.dial(t)
			c.send(tc.before + "GET /lines HTTP/1.1\r\nHost: a\r\n\r\n" + tc.extra)
			if tc.before != "" {
				if r := c.read("GET"); r.body != "hello" {
					t.Fatalf("pipelined response %q", r.body)
				}
			}
			head := c.readHead()
			if !strings.HasPrefix(head, "HTTP/1.1 101 Switching Protocols\r\n") ||
				!strings.Contains(head, "\r\nUpgrade: lines\r\n") || !strings.Contains(head, "\r\nDate: ") ||
				strings.Contains(head, "Content-Length") || strings.Contains(head, "Transfer-Encoding") {
				t.Fatalf("head %q", head)
			}
			line, _ := c.br.ReadString('\n')
			if line != "buffered "+tc.buffered+"\n" {
				t.Fatalf("first line %q", line)
			}
			if tc.extra != "" {
				if line, _ := c.br.ReadString('\n'); line != "echo "+tc.extra {
					t.Fatalf("early bytes: %q", line)
				}
			}
			for _, msg := range []string{"one\n", strings.Repeat("x", 100<<10) + "\n"} {
				c.send(msg)
				if line, err := c.br.ReadString('\n'); line != "echo "+msg {
					t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(line), err)
				}
			}
			c.send("quit\n")
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
			c.expectClosed()
		})
	}
	waitFor(t, func() bool { return ts.HijackedConns() == 0 }) // the handlers close them as they return
}

// TestHijackDeadlines checks the hijacked connection is a real net.Conn:
// its read deadline fires.
func TestHijackDeadlines(t *testing.T) {
	got := make(chan error, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nc, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			got <- err
			return
		}
		defer nc.Close()
		_ = nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err = nc.Read(make([]byte, 1))
		got <- err
	})
	ts := startNetHTTP(t, httpcore.Config{}, h)
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	select {
	case err := <-got:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read on the hijacked conn: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("read deadline did not fire")
	}
	c.expectClosed()
}

// TestShutdownHijacked checks that Shutdown runs the shutdown hooks and
// waits for hijacked connections, and closes them when its context ends.
func TestShutdownHijacked(t *testing.T) {
	for _, closeOnHook := range []bool{true, false} {
		name := map[bool]string{true: "hook closes", false: "deadline closes"}[closeOnHook]
		t.Run(name, func(t *testing.T) {
			conns := make(chan net.Conn, 1)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				nc, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conns <- nc
				}
			})
			fd, addr := listenLoopback(t)
			defer closeFD(fd)
			srv := httpcore.NewServer(httpcore.Config{}, New(h, Config{}))
			var hooked atomic.Bool
			srv.RegisterOnShutdown(func() {
				hooked.Store(true)
				if closeOnHook {
					nc := <-conns
					io.WriteString(nc, "bye\n")
					nc.Close()
				}
			})
			served := make(chan error, 1)
			go func() { served <- srv.Serve([]int{fd}) }()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
			waitFor(t, func() bool { return srv.HijackedConns() == 1 })

			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			err = srv.Shutdown(ctx)
			elapsed := time.Since(start)
			if !hooked.Load() {
				t.Fatal("shutdown hook not called")
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			if closeOnHook {
				if err != nil || line != "bye\n" {
					t.Fatalf("Shutdown: %v, client read %q", err, line)
				}
			} else if !errors.Is(err, context.DeadlineExceeded) || elapsed < 250*time.Millisecond || line != "" {
				t.Fatalf("Shutdown: %v after %v, client read %q; want the deadline, then the close", err, elapsed, line)
			}
			if n := srv.HijackedConns(); n != 0 {
				t.Fatalf("%d hijacked connections left", n)
			}
			if err := <-served; err != nil {
				t.Fatal(err)
			}
		})
	}
}
