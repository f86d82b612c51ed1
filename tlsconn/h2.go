package tlsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h2Server serves HTTP/2 connections with net/http's server and forwards
// every stream to the loop as an HTTP/1.1 request.
type h2Server struct {
	s    *Server
	hs   *http.Server
	ln   *connListener
	once sync.Once
	fwds sync.Map // net.Conn → *forwarder
}

type fwdKey struct{}

func newH2Server(s *Server) *h2Server {
	h := &h2Server{s: s, ln: newConnListener()}
	h.hs = &http.Server{
		Handler:     http.HandlerFunc(forward),
		IdleTimeout: s.cfg.HTTP.IdleTimeout,
		// The handshake is done and ALPN said h2: net/http reads the
		// negotiated protocol from the *tls.Conn and runs HTTP/2.
		TLSConfig: &tls.Config{NextProtos: []string{ProtoH2}},
	}
	h.hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		f := newForwarder(s, c.RemoteAddr().String())
		h.fwds.Store(c, f)
		return context.WithValue(ctx, fwdKey{}, f)
	}
	h.hs.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed || st == http.StateHijacked {
			if f, ok := h.fwds.LoadAndDelete(c); ok {
				f.(*forwarder).t.CloseIdleConnections()
			}
			h.ln.closed(c)
		}
	}
	return h
}

// serve hands tc to the HTTP/2 server, starting it on first use, and waits
// until the connection is done.
func (h *h2Server) serve(tc *tls.Conn) {
	h.once.Do(func() {
		go func() { _ = h.hs.Serve(h.ln) }() // returns at Shutdown
	})
	h.ln.serve(tc)
}

// shutdown sends GOAWAY to every HTTP/2 client and waits for their
// streams, or ctx.
func (h *h2Server) shutdown(ctx context.Context) error {
	_ = h.ln.Close() // Serve may not have started
	err := h.hs.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// connListener is a net.Listener fed with handshaken connections.
type connListener struct {
	conns chan net.Conn
	mu    sync.Mutex
	waits map[net.Conn]chan struct{}
	stop  chan struct{}
	once  sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), waits: map[net.Conn]chan struct{}{}, stop: make(chan struct{})}
}

// serve passes c to Accept and returns when the server is done with it.
func (l *connListener) serve(c net.Conn) {
	end := make(chan struct{})
	l.mu.Lock()
	l.waits[c] = end
	l.mu.Unlock()
	select {
	case l.conns <- c:
		<-end
	case <-l.stop:
		l.closed(c)
		_ = c.Close()
	}
}

// closed reports that the server is done with c.
func (l *connListener) closed(c net.Conn) {
	l.mu.Lock()
	end := l.waits[c]
	delete(l.waits, c)
	l.mu.Unlock()
	if end != nil {
		close(end)
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.stop:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.stop) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.UnixAddr{Net: "unix", Name: "tls"} }

// A forwarder sends one HTTP/2 connection's streams to the loop as
// HTTP/1.1 requests over socket pairs, kept alive between streams.
type forwarder struct {
	t *http.Transport
}

func newForwarder(s *Server, peer string) *forwarder {
	return &forwarder{t: &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			return pipeToLoop(s.loop, peer, time.Now())
		},
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     s.cfg.HTTP.IdleTimeout,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}}
}

// hopHeaders are not forwarded in either direction (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te", "Trailer"}

// forward answers an HTTP/2 stream with the loop's answer to it.
func forward(w http.ResponseWriter, r *http.Request) {
	f := r.Context().Value(fwdKey{}).(*forwarder)
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "http", r.Host
	if r.Host == "" { // HTTP/2 allows a request with no :authority
		out.URL.Host = "localhost"
		out.Host = ""
	}
	out.RequestURI = ""
	for _, h := range hopHeaders {
		out.Header.Del(h)
	}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = nil // the client sent none: send none
	}
	if r.ContentLength == 0 {
		out.Body = nil
	}
	resp, err := f.t.RoundTrip(out)
	if err != nil {
		http.Error(w, "502 bad gateway", http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for _, h := range hopHeaders {
		resp.Header.Del(h)
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(resp.StatusCode)
	copyFlushing(w, resp.Body)
}

// copyFlushing copies a response body, flushing whenever the loop has sent
// no more yet, so streamed responses stream.
func copyFlushing(w http.ResponseWriter, body io.Reader) {
	bp := outBufs.Get().(*[]byte)
	defer outBufs.Put(bp)
	rc := http.NewResponseController(w)
	for {
		n, err := body.Read(*bp)
		if n > 0 {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				return
			}
			_ = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}
