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

	"golang.org/x/net/http2"
)

// h2Server serves HTTP/2 connections with golang.org/x/net/http2 and
// forwards every stream to the loop as an HTTP/1.1 request.
type h2Server struct {
	s  *Server
	hs *http.Server // carries a graceful shutdown to every connection
	h2 *http2.Server
}

func newH2Server(s *Server) *h2Server {
	h := &h2Server{s: s, hs: &http.Server{}, h2: &http2.Server{IdleTimeout: s.cfg.HTTP.IdleTimeout}}
	_ = http2.ConfigureServer(h.hs, h.h2) // registers the connections for hs.Shutdown; never fails here
	return h
}

// serve runs the HTTP/2 connection tc until it is done.
func (h *h2Server) serve(tc *tls.Conn) {
	f := newForwarder(h.s, tc.RemoteAddr().String())
	defer f.t.CloseIdleConnections()
	h.h2.ServeConn(tc, &http2.ServeConnOpts{BaseConfig: h.hs, Handler: f})
}

// shutdown sends GOAWAY to every HTTP/2 client: streams already taken are
// finished, the connections close after them. Server.Shutdown waits.
func (h *h2Server) shutdown(ctx context.Context) error {
	err := h.hs.Shutdown(ctx)
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

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

// ServeHTTP answers an HTTP/2 stream with the loop's answer to it.
func (f *forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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

// outBufSize is the buffer of copyFlushing: one TLS record.
const outBufSize = 16 << 10

var outBufs = sync.Pool{New: func() any { b := make([]byte, outBufSize); return &b }}

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
