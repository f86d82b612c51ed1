package httpcore

import (
	"net"
	"net/http"
	"testing"
	"time"
)

const mib = 1 << 20

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
