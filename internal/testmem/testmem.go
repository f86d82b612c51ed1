// Package testmem measures memory for tests: the largest heap seen while
// a test runs, and a reader that reads slowly, as a slow client does.
package testmem

import (
	"io"
	"runtime"
	"sync/atomic"
	"time"
)

// MiB is a mebibyte.
const MiB = 1 << 20

// HeapSampler records the largest heap seen while it runs.
type HeapSampler struct {
	base uint64
	peak atomic.Uint64
	stop chan struct{}
	done chan struct{}
}

// StartHeapSampler collects garbage, notes the heap as the baseline and
// samples it every 20ms until Finish.
func StartHeapSampler() *HeapSampler {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := &HeapSampler{base: ms.HeapAlloc, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *HeapSampler) run() {
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

// Finish stops sampling and returns the baseline and the peak heap.
func (s *HeapSampler) Finish() (base, peak uint64) {
	close(s.stop)
	<-s.done
	return s.base, s.peak.Load()
}

// SlowRead reads n bytes from r in reads of at most 64 KiB, pausing every
// step, and returns how many it read.
func SlowRead(r io.Reader, n int64, pause time.Duration) (int64, error) {
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
