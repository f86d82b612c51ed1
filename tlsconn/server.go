// Package tlsconn serves HTTPS beside an httpcore event loop. A goroutine
// runs the TLS handshake of each connection; then the plaintext reaches the
// loop's handlers unchanged:
//
//   - HTTP/1.1 (ALPN "http/1.1", or none): the loop takes the client's
//     socket itself (httpcore.ConnInfo.Codec): it reads and writes the
//     ciphertext, crypto/tls decrypts and encrypts on the loop's goroutine,
//     and the connection costs no goroutine of its own, so native
//     handlers, static files and the net/http adapter all work over TLS
//     at about the cost of plaintext plus the cipher;
//   - HTTP/2 (ALPN "h2"): golang.org/x/net/http2 (as for h2c in package
//     nethttp) serves the connection, and each stream is
//     forwarded as an HTTP/1.1 request over a socket pair whose other end
//     the loop serves as an ordinary connection, so the same handlers
//     answer it.
//
// The handshake counts against the loop's header timeout: a client that has
// not finished it and sent a request head within HeaderTimeout of connecting
// is closed.
package tlsconn

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/httpcore"
)

// ALPN protocol names offered, in order of preference.
const (
	ProtoH2   = "h2"
	ProtoHTTP = "http/1.1"
)

// Config configures a Server.
type Config struct {
	// TLS holds the certificates (several are chosen among by SNI) and
	// session ticket keys. Serve uses a clone with NextProtos set to h2 and
	// http/1.1 (unless set) and MinVersion at least TLS 1.2.
	TLS *tls.Config
	// HTTP is the loop's configuration; its timeouts bound the handshake
	// (HeaderTimeout), writes to a slow client (WriteTimeout) and idle
	// HTTP/2 connections (IdleTimeout).
	HTTP httpcore.Config
	// Logger logs failed handshakes at debug level; default: none.
	Logger hclog.Logger
}

// A Server terminates TLS for an httpcore.Server.
type Server struct {
	cfg  Config
	tls  *tls.Config
	loop *httpcore.Server
	log  hclog.Logger
	h2   *h2Server

	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	open    map[net.Conn]struct{} // every TLS connection, to close on a forced stop
	closed  bool
	conns   sync.WaitGroup // handshakes and HTTP/1.1 bridges
	shaking sync.WaitGroup // handshakes
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("tlsconn: server closed")

// New returns a Server that hands the plaintext of its connections to loop.
func New(cfg Config, loop *httpcore.Server) *Server {
	cfg.HTTP = withDefaults(cfg.HTTP)
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	t := cfg.TLS.Clone()
	if t == nil {
		t = &tls.Config{}
	}
	if len(t.NextProtos) == 0 {
		t.NextProtos = []string{ProtoH2, ProtoHTTP}
	}
	t.MinVersion = max(t.MinVersion, tls.VersionTLS12)
	s := &Server{cfg: cfg, tls: t, loop: loop, log: cfg.Logger,
		lns: map[net.Listener]struct{}{}, open: map[net.Conn]struct{}{}}
	s.h2 = newH2Server(s)
	return s
}

func withDefaults(c httpcore.Config) httpcore.Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.HeaderTimeout, httpcore.DefaultHeaderTimeout)
	def(&c.WriteTimeout, httpcore.DefaultWriteTimeout)
	def(&c.IdleTimeout, httpcore.DefaultIdleTimeout)
	return c
}

// SetSessionTicketKeys replaces the session ticket keys of every
// connection from now on: the first encrypts new tickets, all decrypt.
// Workers that share keys resume each other's sessions.
func (s *Server) SetSessionTicketKeys(keys [][32]byte) {
	s.tls.SetSessionTicketKeys(keys)
}

// Serve accepts TLS connections on ln until Shutdown, which closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.isClosed() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed, retrying", "error", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		if !s.track(c) {
			_ = c.Close()
			return ErrServerClosed
		}
		go s.handle(c, time.Now())
	}
}

// isTemporary reports whether accept(2) failed for lack of descriptors or
// memory, which passes.
func isTemporary(err error) bool {
	for _, e := range []error{errEMFILE, errENFILE, errENOBUFS, errENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track counts a new connection unless the server is shutting down.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.open[c] = struct{}{}
	s.conns.Add(1)
	s.shaking.Add(1)
	return true
}

// untrack forgets c, which has been closed.
func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.open, c)
	s.mu.Unlock()
	s.conns.Done()
}

// closeAll closes every TLS connection still open.
func (s *Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.open {
		_ = c.Close()
	}
}

// handle runs the handshake on c, accepted at accepted, within the header
// timeout, and serves it by the protocol the client chose.
func (s *Server) handle(c net.Conn, accepted time.Time) {
	sc := &switchConn{Conn: c}
	tc := tls.Server(sc, s.tls)
	deadline := accepted.Add(s.cfg.HTTP.HeaderTimeout)
	_ = c.SetDeadline(deadline)
	// The socket's deadline bounds the handshake; a context would cost
	// crypto/tls a goroutine and a timer per handshake to do the same.
	err := tc.Handshake()
	s.shaking.Done()
	if err != nil {
		s.log.Debug("TLS handshake failed", "remote", c.RemoteAddr(), "error", err)
		_ = c.Close()
		s.untrack(c)
		return
	}
	if tc.ConnectionState().NegotiatedProtocol != ProtoH2 {
		s.serveOnLoop(tc, sc, accepted) // the loop times it out from now on
		s.untrack(c)
		return
	}
	_ = c.SetDeadline(time.Time{})
	// The handshake grew this goroutine's stack; a fresh goroutine with a
	// small stack serves the connection, which may idle for long.
	go func() {
		defer s.untrack(c)
		s.h2.serve(tc)
	}()
}

// StopAccepting closes the listeners and waits until the handshakes in
// progress are over (each within the header timeout) or ctx ends. Calling it
// before the loop drains lets every handshaken client send its request.
func (s *Server) StopAccepting(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		for ln := range s.lns {
			_ = ln.Close()
		}
	}
	s.mu.Unlock()
	return waitGroup(ctx, &s.shaking)
}

// waitGroup waits until wg is done or ctx ends; ctx.Err() if ctx ends
// first.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown stops accepting at once, asks HTTP/2 clients to go away once
// their streams are done, and waits until every TLS connection has closed
// (HTTP/1.1 ones close as the loop drains them) or ctx ends; then the rest
// are closed and ctx.Err() is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.StopAccepting(ctx)
	var h2err error
	if err == nil {
		h2err = s.h2.shutdown(ctx)
		err = waitGroup(ctx, &s.conns)
	}
	if err != nil {
		s.closeAll()
		s.conns.Wait()
		return err
	}
	return h2err
}
