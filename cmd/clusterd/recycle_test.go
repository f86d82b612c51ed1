package main

import (
	"syscall"
	"testing"
	"time"
)

// TestMaxRequestsRecyclesOneAtATime: under load with --max-requests,
// workers are replaced one at a time, no request fails, and the pool never
// has fewer ready workers than configured minus one.
func TestMaxRequestsRecyclesOneAtATime(t *testing.T) {
	const workers, maxRequests = 3, 300
	path := ctlPath(t)
	c := startCluster(t, workers, nil, "--workers", "3", "--control", path,
		"--max-requests", "300", "--admin-listen", "127.0.0.1:0")
	admin := c.adminAddr()
	l := startLoad(c.addr, "/", 8, 20*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	fewest, polls := workers, 0
	for time.Now().Before(deadline) {
		ready := 0
		for _, w := range status(t, path).Workers {
			if w.State == "ready" {
				ready++
			}
		}
		fewest, polls = min(fewest, ready), polls+1
		if m := scrape(t, admin); m[`clusterd_workers_recycled_total{limit="max_requests"}`] >= 4 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	l.stopAndWait()
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 || l.ok.Load() < 4*maxRequests {
		t.Fatalf("load: %v", l)
	}
	if fewest < workers-1 {
		t.Errorf("%d ready workers at one point, want at least %d", fewest, workers-1)
	}
	// One at a time: each recycling ends before the next begins.
	c.mu.Lock()
	running, recycled := 0, 0
	for _, l := range c.logs {
		switch l["@message"] {
		case "recycling worker":
			running++
			if running > 1 {
				t.Errorf("two workers recycled at once")
			}
		case "worker recycled", "recycling failed; the worker serves on":
			running--
			recycled++
		}
	}
	started := len(c.ready) // distinct worker processes that became ready
	c.mu.Unlock()
	if recycled < 4 || started < workers+recycled {
		t.Errorf("%d workers recycled, %d started in all", recycled, started)
	}
	t.Logf("%d workers recycled, %v; fewest ready %d in %d polls", recycled, l, fewest, polls)
	c.signal(syscall.SIGTERM)
	if code := c.wait(15 * time.Second); code != 0 {
		t.Errorf("master exit code %d", code)
	}
}
