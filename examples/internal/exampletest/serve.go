// Package exampletest runs the examples in their tests: in process, on
// one httpcore event loop with the net/http adapter, or as a real cluster
// of processes (the test binary re-executed as the example program).
package exampletest

import (
	"net/http"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testserve"
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
	a := nethttp.New(h, nethttp.Config{})
	s := &Server{Server: httpcore.NewServer(httpcore.Config{}, a)}
	s.RegisterOnShutdown(a.Shutdown)
	if onShutdown != nil {
		s.RegisterOnShutdown(onShutdown)
	}
	s.URL = "http://" + testserve.Loop(t, s.Server)
	return s
}

// Client returns an HTTP client whose idle connections close with the test.
func Client(t testing.TB) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
