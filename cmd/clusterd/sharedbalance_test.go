package main

import (
	"syscall"
	"testing"
	"time"
)

// openConns returns the open connections of each worker once the
// heartbeats count want in all.
func openConns(t *testing.T, path string, want int64) map[int]int64 {
	t.Helper()
	var open map[int]int64
	waitFor(t, 5*time.Second, func() bool {
		open = map[int]int64{}
		var sum int64
		for _, w := range status(t, path).Workers {
			open[w.PID] = w.Connections
			sum += w.Connections
		}
		return sum == want
	})
	return open
}

// TestSharedStuckWorkerStrandsNothing: under shared scheduling a worker
// clearly over the least loaded one's open connections holds off
// accepting. Keep-alive connections opened one after the other end up
// even over two workers; then one worker is stopped (SIGSTOP) with its
// connections open, and every new connection is still answered at once,
// by the other, which stops holding for the stuck one after a few holds.
func TestSharedStuckWorkerStrandsNothing(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 2, nil, "--workers", "2", "--sched", "shared", "--control", path)
	for range 16 {
		openKeepAlive(t, c.addr)
	}
	open := openConns(t, path, 16)
	var victim int
	for pid, n := range open {
		if n < 4 || n > 12 {
			t.Errorf("open connections per worker %v; want within 4 of even", open)
		}
		victim = pid
	}
	t.Logf("before: open connections per worker %v", open)
	if err := syscall.Kill(victim, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer syscall.Kill(victim, syscall.SIGCONT)
	start := time.Now()
	var slowest time.Duration
	for i := range 24 {
		t0 := time.Now()
		openKeepAlive(t, c.addr) // fails the test after 5s
		d := time.Since(t0)
		slowest = max(slowest, d)
		if d > time.Second {
			t.Errorf("connection %d answered after %v with a worker stopped", i, d)
		}
	}
	t.Logf("24 connections with a worker stopped: %v in all, the slowest %v", time.Since(start), slowest)
}
