package nethttp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
)

// h2cServer serves HTTP/2 over cleartext TCP (RFC 9113 3.3, RFC 7540 3.2)
// with golang.org/x/net/http2 on hijacked connections: those that start
// with the HTTP/2 preface, and those whose first request asks to upgrade.
type h2cServer struct {
	h    http.Handler
	h2   *http2.Server
	base *http.Server // carries the graceful shutdown to HTTP/2 connections
}

func newH2CServer(h http.Handler) *h2cServer {
	s := &h2cServer{h: h, h2: &http2.Server{}, base: &http.Server{Handler: h}}
	_ = http2.ConfigureServer(s.base, s.h2) // registers the GOAWAY on base.Shutdown
	return s
}

// wants reports whether r starts an HTTP/2 connection.
func (s *h2cServer) wants(r *http.Request) bool {
	return isPreface(r) || isUpgrade(r)
}

func isPreface(r *http.Request) bool {
	return r.Method == "PRI" && r.Proto == "HTTP/2.0" && r.RequestURI == "*" && len(r.Header) == 0
}

// isUpgrade reports an HTTP/1.1 request asking to upgrade to h2c, with the
// one HTTP2-Settings field the upgrade needs (RFC 7540 3.2).
func isUpgrade(r *http.Request) bool {
	return r.ProtoMajor == 1 && r.ProtoMinor == 1 &&
		httpguts.HeaderValuesContainsToken(r.Header["Upgrade"], "h2c") &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "Upgrade") &&
		httpguts.HeaderValuesContainsToken(r.Header["Connection"], "HTTP2-Settings") &&
		len(r.Header["Http2-Settings"]) == 1
}

// ServeHTTP hijacks the connection of r and serves HTTP/2 on it until the
// client or a shutdown ends it.
func (s *h2cServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isPreface(r) {
		s.servePreface(w, r)
		return
	}
	settings, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(r.Header.Get("Http2-Settings"), "="))
	if err != nil {
		http.Error(w, "invalid HTTP2-Settings", http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(r.Body) // it arrives as stream 1's body, before the switch
	if err != nil {
		http.Error(w, "reading the request body: "+err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	if _, err := io.WriteString(nc, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"); err != nil {
		_ = nc.Close()
		return
	}
	s.serve(r.Context(), &bufConn{Conn: nc, r: rw.Reader}, &http2.ServeConnOpts{UpgradeRequest: r, Settings: settings})
}

// servePreface serves a connection that started with the HTTP/2 preface,
// whose last part ("SM\r\n\r\n") is still to be read.
func (s *h2cServer) servePreface(w http.ResponseWriter, r *http.Request) {
	nc, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	var rest [6]byte
	if _, err := io.ReadFull(rw, rest[:]); err != nil || string(rest[:]) != "SM\r\n\r\n" {
		_ = nc.Close()
		return
	}
	s.serve(r.Context(), &bufConn{Conn: nc, r: rw.Reader}, &http2.ServeConnOpts{SawClientPreface: true})
}

func (s *h2cServer) serve(ctx context.Context, nc net.Conn, opts *http2.ServeConnOpts) {
	defer nc.Close()
	opts.Context = context.WithoutCancel(ctx) // the request's ends with this handler
	opts.BaseConfig = s.base
	opts.Handler = s.h
	s.h2.ServeConn(nc, opts)
}

// shutdown tells every HTTP/2 connection to go away (GOAWAY) once its
// streams are done.
func (s *h2cServer) shutdown() {
	// base serves no connection itself: Shutdown only runs its hooks, on
	// goroutines of their own, and returns.
	_ = s.base.Shutdown(context.Background())
}

// bufConn is a net.Conn whose reads start with what its bufio.Reader holds.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) {
	if c.r.Buffered() > 0 {
		return c.r.Read(p)
	}
	return c.Conn.Read(p)
}
