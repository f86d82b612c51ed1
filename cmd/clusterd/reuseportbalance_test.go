package main

import (
	"bufio"
	"fmt"
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
	ka := dialKeepAlive(t, c.addr, n)
	ka.ask(t, "round 1")
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
		ka.ask(t, "round 2") // idle between rounds: what a worker gives away
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("open connections per worker: %v", open)
	ka.ask(t, "round 3")
}

// TestReuseportPassAtMasterFdLimit: with the master at its descriptor
// limit, the connections workers give away cannot reach it (recvmsg
// drops them); the master says so, once, and the workers, which kept
// their copies, serve them again: every connection answers every request.
func TestReuseportPassAtMasterFdLimit(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 4, nil, "--workers", "4", "--sched", "reuseport", "--control", path)
	const n = 200
	ka := dialKeepAlive(t, c.addr, n)
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
		ka.ask(t, fmt.Sprintf("round %d", round))
		time.Sleep(100 * time.Millisecond) // idle: what a worker gives away
		refused = refusals() > 0
	}
	if !refused {
		t.Skip("no worker gave a connection away: the kernel split them evenly")
	}
	ka.ask(t, "last round") // those served again answer
	time.Sleep(100 * time.Millisecond)
	if k := refusals(); k != 1 {
		t.Errorf("%d log lines about connections the master could not receive, want 1 (at most one a minute)", k)
	}
}

// keepAlive is a set of keep-alive connections to a cluster.
type keepAlive struct {
	conns   []net.Conn
	readers []*bufio.Reader
}

// dialKeepAlive opens n connections to addr, closed when the test ends.
func dialKeepAlive(t *testing.T, addr string, n int) *keepAlive {
	t.Helper()
	ka := &keepAlive{conns: make([]net.Conn, n), readers: make([]*bufio.Reader, n)}
	for i := range ka.conns {
		nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		ka.conns[i], ka.readers[i] = nc, bufio.NewReader(nc)
	}
	return ka
}

// ask sends "GET /" on every connection, then reads every answer, which
// must be a 200; what names the round in failures.
func (ka *keepAlive) ask(t *testing.T, what string) {
	t.Helper()
	for i, nc := range ka.conns {
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(nc, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
			t.Fatalf("%s, connection %d: %v", what, i, err)
		}
	}
	for i, r := range ka.readers {
		if code, _, err := roundTripRead(r); err != nil || code != 200 {
			t.Fatalf("%s, connection %d: %d %v", what, i, code, err)
		}
	}
}
