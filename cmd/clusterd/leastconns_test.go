package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/master"
)

// openKeepAlive opens a connection, gets one answer on it and leaves it open.
func openKeepAlive(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: t\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if code, _, err := roundTripRead(bufio.NewReader(c)); err != nil || code != 200 {
		t.Fatalf("long connection: %d %v", code, err)
	}
	return c
}

// roundTripRead reads one response's status and skips its body (the
// demo's "/" answer has a Content-Length).
func roundTripRead(r *bufio.Reader) (int, string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, "", err
	}
	var code, n int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &code); err != nil {
		return 0, "", err
	}
	for {
		h, err := r.ReadString('\n')
		if err != nil {
			return 0, "", err
		}
		if h == "\r\n" {
			break
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Content-Length") {
			_, _ = fmt.Sscanf(strings.TrimSpace(v), "%d", &n)
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return code, string(body), err
}

// TestLeastConnsUnderSkew: one long-lived connection, then three that
// close at once, forty times over four workers. Round-robin puts every
// long connection on the same worker; least-conns keeps the open
// connections even (within 10%).
func TestLeastConnsUnderSkew(t *testing.T) {
	for _, policy := range master.RRPolicies {
		t.Run(policy, func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 4, nil, "--workers", "4", "--sched", "rr", "--rr-policy", policy, "--control", path)
			client := newConnClient()
			for i := 0; i < 40; i++ {
				openKeepAlive(t, c.addr)
				for j := 0; j < 3; j++ {
					if code, _, err := c.get(client, "/"); err != nil || code != 200 {
						t.Fatalf("short request: %d %v", code, err)
					}
				}
			}
			var open []int64
			waitFor(t, 5*time.Second, func() bool { // until the heartbeats count only the long ones
				open = open[:0]
				var sum int64
				for _, w := range status(t, path).Workers {
					open = append(open, w.Connections)
					sum += w.Connections
				}
				return sum == 40
			})
			lo, hi := open[0], open[0]
			for _, n := range open {
				lo, hi = min(lo, n), max(hi, n)
			}
			t.Logf("%s: open connections per worker %v", policy, open)
			if policy == master.RRPolicyLeastConns && (lo < 9 || hi > 11) {
				t.Errorf("least-conns: open connections per worker %v; want 10 ± 1 each", open)
			}
		})
	}
}
