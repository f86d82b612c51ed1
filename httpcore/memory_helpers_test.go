package httpcore

import (
	"io"
	"net"
	"net/http"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

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
