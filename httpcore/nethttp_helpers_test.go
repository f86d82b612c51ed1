package httpcore

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startNetHTTP serves h through the net/http adapter until the test ends.
func startNetHTTP(t testing.TB, cfg Config, h http.Handler) *testServer {
	t.Helper()
	return startServer(t, cfg, NetHTTP(h, NetHTTPConfig{}))
}

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

func (ts *testServer) url(path string) string { return "http://" + ts.addr + path }

// httpGet fetches url and returns the response with its body read.
func httpGet(t testing.TB, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(b)
}

// readHead reads a response head, up to the empty line, from a raw client.
func (c *clientConn) readHead() string {
	c.t.Helper()
	var b strings.Builder
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("read head: %v (so far %q)", err, b.String())
		}
		b.WriteString(line)
		if line == "\r\n" {
			return b.String()
		}
	}
}

// heapSampler records the largest heap seen while it runs.
type heapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &heapSampler{base: ms.HeapAlloc, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *heapSampler) run() {
	defer close(s.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > s.peak.Load() {
			s.peak.Store(ms.HeapAlloc)
		}
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
	}
}

// finish stops sampling and returns the baseline and the peak heap.
func (s *heapSampler) finish() (base, peak uint64) {
	close(s.stop)
	<-s.done
	return s.base, s.peak.Load()
}

// slowRead reads n bytes from r in reads of at most 64 KiB, pausing every
// step, and returns how many it read.
func slowRead(r io.Reader, n int64, pause time.Duration) (int64, error) {
	buf := make([]byte, 64<<10)
	var got int64
	for got < n {
		k, err := r.Read(buf[:min(int64(len(buf)), n-got)])
		got += int64(k)
		if err != nil {
			return got, err
		}
		time.Sleep(pause)
	}
	return got, nil
}

const mib = 1 << 20
