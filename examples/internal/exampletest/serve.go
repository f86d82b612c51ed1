// Package exampletest runs the examples in their tests: in process, on
// one httpcore event loop with the net/http adapter, or as a real cluster
// of processes (the test binary re-executed as the example program).
package exampletest

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/rawfd"
	"github.com/clusterd/clusterd/nethttp"
)

// A Server is an app served in process by one event loop through the
// net/http adapter, as each clusterd worker serves it.
type Server struct {
	*httpcore.Server
	URL string // http://127.0.0.1:port
}

// Serve serves h on a loopback port until the test ends; onShutdown, if
// set, runs when the server drains, as Options.OnShutdown does.
func Serve(t testing.TB, h http.Handler, onShutdown func()) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	_ = ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := rawfd.DupFile(f) // the loop's own copy
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	a := nethttp.New(h, nethttp.Config{})
	s := &Server{Server: httpcore.NewServer(httpcore.Config{}, a), URL: "http://" + ln.Addr().String()}
	s.RegisterOnShutdown(a.Shutdown)
	if onShutdown != nil {
		s.RegisterOnShutdown(onShutdown)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve([]int{fd}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		_ = unix.Close(fd)
	})
	return s
}

// Client returns an HTTP client whose idle connections close with the test.
func Client(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
