package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// load is a keep-alive load generator that, like wrk, never retries: a
// request that does not get a complete response counts as an error. It
// reconnects only when the server says "Connection: close" or an error
// ended the connection.
type load struct {
	addr, path string
	closeEach  bool        // a new connection per request (Connection: close)
	tls        *tls.Config // speak TLS when set

	ok, non2xx, errs atomic.Int64
	mu               sync.Mutex
	firstErrs        []string
	stop             chan struct{}
	wg               sync.WaitGroup
}

// startLoad runs conns keep-alive connections until stopAndWait, for at most limit.
func startLoad(addr, path string, conns int, limit time.Duration) *load {
	return startLoadMode(addr, path, conns, limit, false)
}

// startLoadMode is startLoad with, if closeEach, a new connection per request.
func startLoadMode(addr, path string, conns int, limit time.Duration, closeEach bool) *load {
	return startLoadTLS(addr, path, conns, limit, closeEach, nil)
}

// startLoadTLS is startLoadMode over TLS with cfg (plaintext if nil).
func startLoadTLS(addr, path string, conns int, limit time.Duration, closeEach bool, cfg *tls.Config) *load {
	l := &load{addr: addr, path: path, closeEach: closeEach, tls: cfg, stop: make(chan struct{})}
	deadline := time.Now().Add(limit)
	for i := 0; i < conns; i++ {
		l.wg.Add(1)
		go l.run(deadline)
	}
	return l
}

func (l *load) stopAndWait() {
	close(l.stop)
	l.wg.Wait()
}

func (l *load) run(deadline time.Time) {
	defer l.wg.Done()
	var c net.Conn
	var r *bufio.Reader
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	req := "GET " + l.path + " HTTP/1.1\r\nHost: " + l.addr + "\r\n\r\n"
	if l.closeEach {
		req = "GET " + l.path + " HTTP/1.1\r\nHost: " + l.addr + "\r\nConnection: close\r\n\r\n"
	}
	for time.Now().Before(deadline) {
		select {
		case <-l.stop:
			return
		default:
		}
		if c == nil {
			var err error
			if c, err = l.dial(); err != nil {
				l.fail("dial: " + err.Error())
				time.Sleep(10 * time.Millisecond)
				continue
			}
			r = bufio.NewReader(c)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		code, keep, err := roundTrip(c, r, req)
		switch {
		case err != nil:
			l.fail(err.Error())
		case code/100 != 2:
			l.non2xx.Add(1)
		default:
			l.ok.Add(1)
		}
		if err != nil || !keep {
			_ = c.Close()
			c = nil
		}
	}
}

func (l *load) dial() (net.Conn, error) {
	d := &net.Dialer{Timeout: 2 * time.Second}
	if l.tls != nil {
		return tls.DialWithDialer(d, "tcp", l.addr, l.tls)
	}
	return d.Dial("tcp", l.addr)
}

func (l *load) fail(msg string) {
	l.errs.Add(1)
	l.mu.Lock()
	if len(l.firstErrs) < 5 {
		l.firstErrs = append(l.firstErrs, msg)
	}
	l.mu.Unlock()
}

func (l *load) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d ok, %d non-2xx, %d errors %v", l.ok.Load(), l.non2xx.Load(), l.errs.Load(), l.firstErrs)
}

// roundTrip sends req and reads one response with a Content-Length body.
func roundTrip(c net.Conn, r *bufio.Reader, req string) (code int, keepAlive bool, err error) {
	if _, err := io.WriteString(c, req); err != nil {
		return 0, false, fmt.Errorf("write: %w", err)
	}
	tp := textproto.NewReader(r)
	line, err := tp.ReadLine()
	if err != nil {
		return 0, false, fmt.Errorf("read status: %w", err)
	}
	f := strings.Fields(line)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, false, fmt.Errorf("bad status line %q", line)
	}
	code, _ = strconv.Atoi(f[1])
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return code, false, fmt.Errorf("read headers: %w", err)
	}
	n, err := strconv.Atoi(h.Get("Content-Length"))
	if err != nil {
		return code, false, fmt.Errorf("no Content-Length in %d response", code)
	}
	if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
		return code, false, fmt.Errorf("read body: %w", err)
	}
	return code, !strings.EqualFold(h.Get("Connection"), "close"), nil
}
