package main

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestReuseportEvensOutKeepAlive: under reuseport scheduling the kernel
// splits new connections over the workers' sockets by a hash of their
// ports. A burst of 200 keep-alive connections, as wrk opens them, ends up
// even over 4 workers, the busiest within an eighth (and 2) of the idlest:
// the workers over their share give idle connections away through the
// master. Every connection still answers its next
// request, wherever it went.
func TestReuseportEvensOutKeepAlive(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 4, nil, "--workers", "4", "--sched", "reuseport", "--control", path)
	const n = 200
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		nc, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		conns[i], readers[i] = nc, bufio.NewReader(nc)
	}
	ask := func(round int) {
		t.Helper()
		for i, nc := range conns {
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
				t.Fatalf("round %d, connection %d: %v", round, i, err)
			}
		}
		for i := range conns {
			if code, _, err := roundTripRead(readers[i]); err != nil || code != 200 {
				t.Fatalf("round %d, connection %d: %d %v", round, i, code, err)
			}
		}
	}
	ask(1)
	var open map[int]int64
	uneven := func() bool {
		open = openConns(t, path, n)
		least, most := int64(n), int64(0)
		for _, o := range open {
			least, most = min(least, o), max(most, o)
		}
		return most >= least+max(2, least/8)
	}
	deadline := time.Now().Add(10 * time.Second)
	for uneven() {
		if time.Now().After(deadline) {
			t.Fatalf("open connections per worker %v: the busiest is not within an eighth of the idlest", open)
		}
		ask(2) // idle between rounds: what a worker gives away
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("open connections per worker: %v", open)
	ask(3)
}

// TestReuseportPassAtMasterFdLimit: with the master at its descriptor
// limit, the connections workers give away cannot reach it (recvmsg
// drops them); the master says so, once, and the workers, which kept
// their copies, serve them again: every connection answers every request.
func TestReuseportPassAtMasterFdLimit(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 4, nil, "--workers", "4", "--sched", "reuseport", "--control", path)
	const n = 200
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	for i := range conns {
		nc, err := net.DialTimeout("tcp", c.addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		conns[i], readers[i] = nc, bufio.NewReader(nc)
	}
	// Before any is given away: the workers give idle ones only.
	limitFiles(t, c.cmd.Process.Pid, 0)
	refusals := func() int { // log lines saying so
		c.mu.Lock()
		defer c.mu.Unlock()
		k := 0
		for _, l := range c.logs {
			if m, _ := l["@message"].(string); strings.HasPrefix(m, "could not receive the connections a worker gave away") {
				k++
			}
		}
		return k
	}
	refused := false
	for round := 1; round <= 20 && !refused; round++ {
		for i, nc := range conns {
			_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
				t.Fatalf("round %d, connection %d: %v", round, i, err)
			}
		}
		for i := range conns {
			if code, _, err := roundTripRead(readers[i]); err != nil || code != 200 {
				t.Fatalf("round %d, connection %d: %d %v", round, i, code, err)
			}
		}
		time.Sleep(100 * time.Millisecond) // idle: what a worker gives away
		refused = refusals() > 0
	}
	if !refused {
		t.Skip("no worker gave a connection away: the kernel split them evenly")
	}
	for i, nc := range conns { // one more round: those served again answer
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatalf("last round, connection %d: %v", i, err)
		}
		if code, _, err := roundTripRead(readers[i]); err != nil || code != 200 {
			t.Fatalf("last round, connection %d: %d %v", i, code, err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if k := refusals(); k != 1 {
		t.Errorf("%d log lines about connections the master could not receive, want 1 (at most one a minute)", k)
	}
}
