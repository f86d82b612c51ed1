package main

import (
	"sync"
	"testing"
	"time"
)

// TestOrphansFinishInflight: kill -9 of the master with requests in flight:
// its workers (whose stderr pipe has no reader any more) finish them.
func TestOrphansFinishInflight(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2")
	const n = 4
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := c.get(newConnClient(), "/delay?ms=600")
			if err != nil {
				t.Logf("request: %v", err)
			}
			codes <- code
		}()
	}
	time.Sleep(200 * time.Millisecond) // every request reached a worker
	_ = c.cmd.Process.Kill()
	wg.Wait()
	close(codes)
	ok := 0
	for code := range codes {
		if code == 200 {
			ok++
		}
	}
	if ok != n {
		t.Errorf("%d of %d in-flight requests completed after the master was killed", ok, n)
	}
}
