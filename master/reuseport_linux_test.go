package master

import (
	"net"
	"os"
	"testing"
	"time"
)

// newTestGroup binds a base socket on a loopback port and joins n slot
// sockets to its group.
func newTestGroup(t *testing.T, n int) (*rpGroup, *os.File) {
	t.Helper()
	base, addr, err := bindReuseportBase("127.0.0.1:0", SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	g := &rpGroup{key: "127.0.0.1:0", addr: addr}
	t.Cleanup(func() {
		for len(g.members) > 0 {
			g.close(g.members[0])
		}
		_ = base.Close()
	})
	for slot := 1; slot <= n; slot++ {
		if _, err := g.join(slot); err != nil {
			t.Fatal(err)
		}
	}
	return g, base
}

// connectN opens n connections to g and returns how many each slot's
// socket queued (nothing accepts them).
func connectN(t *testing.T, g *rpGroup, n int) map[int]int {
	t.Helper()
	before := map[int]int{}
	for _, s := range g.members {
		q, err := s.queued()
		if err != nil {
			t.Fatal(err)
		}
		before[s.slot] = q
	}
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
	}
	got := map[int]int{}
	for _, s := range g.members {
		q, _ := s.queued()
		if d := q - before[s.slot]; d > 0 {
			got[s.slot] = d
		}
	}
	return got
}

func TestSteerProgramShape(t *testing.T) {
	for _, tc := range []struct {
		idx  []int
		want int // instructions
	}{
		{[]int{0}, 9}, {[]int{0, 1, 2}, 9}, {[]int{1}, 11}, {[]int{0, 2}, 13}, {[]int{3, 1, 0}, 15},
	} {
		if got := len(steerProgram(tc.idx)); got != tc.want {
			t.Errorf("steerProgram(%v): %d instructions, want %d", tc.idx, got, tc.want)
		}
	}
	// The largest pool fits the kernel's limit of 4096 instructions.
	idx := make([]int, MaxWorkers)
	for i := range idx {
		idx[i] = MaxWorkers - i
	}
	if n := len(steerProgram(idx)); n > 4096 {
		t.Errorf("%d workers: %d instructions", MaxWorkers, n)
	}
}

// TestSteerPicksOnlyListedSockets: new connections reach exactly the
// sockets the program lists, and keep doing so after a close has moved
// the last socket into the closed one's place and the group is steered
// again.
func TestSteerPicksOnlyListedSockets(t *testing.T) {
	g, _ := newTestGroup(t, 4)
	if err := g.steer([]int{1, 3}); err != nil { // slots 2 and 4
		t.Fatal(err)
	}
	got := connectN(t, g, 200)
	if len(got) != 2 || got[2] == 0 || got[4] == 0 || got[2]+got[4] != 200 {
		t.Fatalf("connections by slot: %v; want all on slots 2 and 4", got)
	}

	// Close slot 2 (index 1): slot 4 moves to index 1.
	g.close(g.members[1])
	if s := g.members[1].slot; s != 4 || len(g.members) != 3 {
		t.Fatalf("after closing index 1: slot %d at index 1 of %d", s, len(g.members))
	}
	if err := g.steer([]int{1}); err != nil { // slot 4 alone, at its new index
		t.Fatal(err)
	}
	if got := connectN(t, g, 50); len(got) != 1 || got[4] != 50 {
		t.Fatalf("connections by slot after the close: %v; want all 50 on slot 4", got)
	}

	// A new socket joins at the end and takes connections once steered to.
	if _, err := g.join(5); err != nil {
		t.Fatal(err)
	}
	if got := connectN(t, g, 50); len(got) != 1 || got[4] != 50 {
		t.Fatalf("connections by slot before steering to slot 5: %v", got)
	}
	if err := g.steer([]int{3}); err != nil {
		t.Fatal(err)
	}
	if got := connectN(t, g, 50); len(got) != 1 || got[5] != 50 {
		t.Fatalf("connections by slot after steering to slot 5: %v", got)
	}
}

// TestLeavingSocketEmpties: a socket's queue length is what it holds; the
// master can accept from it without blocking, and nil means empty.
func TestLeavingSocketEmpties(t *testing.T) {
	g, _ := newTestGroup(t, 1)
	s := g.members[0]
	connectN(t, g, 3)
	if q, err := s.queued(); err != nil || q != 3 {
		t.Fatalf("queued: %d %v; want 3", q, err)
	}
	for i := 0; i < 3; i++ {
		f, err := s.acceptOne()
		if err != nil || f == nil {
			t.Fatalf("accept %d: %v %v", i, f, err)
		}
		_ = f.Close()
	}
	if f, err := s.acceptOne(); f != nil || err != nil {
		t.Fatalf("accept on an empty queue: %v %v", f, err)
	}
	if q, _ := s.queued(); q != 0 {
		t.Fatalf("queued after accepting all: %d", q)
	}
}

// TestReuseportBaseHoldsPort: the base socket keeps the port from other
// users of it, yet takes no connection itself.
func TestReuseportBaseHoldsPort(t *testing.T) {
	base, addr, err := bindReuseportBase("127.0.0.1:0", SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	if ln, err := net.Listen("tcp", addr); err == nil {
		_ = ln.Close()
		t.Fatalf("a plain listener could bind %s", addr)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		_ = c.Close()
		t.Fatalf("a connection to the base socket alone succeeded")
	}
	if _, _, err := bindReuseportBase("127.0.0.1:bad", SocketOptions{}); err == nil {
		t.Fatal("a bad address was accepted")
	}
}

// TestReuseportAddressForms: an unspecified host gets a dual-stack group
// that IPv4 clients reach; an IPv6 address works as well.
func TestReuseportAddressForms(t *testing.T) {
	for _, tc := range []struct{ listen, dial string }{
		{":0", "127.0.0.1"}, {"[::1]:0", "::1"}, {"127.0.0.1:0", "127.0.0.1"},
	} {
		base, addr, err := bindReuseportBase(tc.listen, SocketOptions{})
		if err != nil {
			t.Logf("%s: %v (no such address here?)", tc.listen, err)
			continue
		}
		g := &rpGroup{key: tc.listen, addr: addr}
		if _, err := g.join(1); err != nil {
			t.Fatalf("%s (bound %s): join: %v", tc.listen, addr, err)
		}
		_, port, _ := net.SplitHostPort(addr)
		c, err := net.DialTimeout("tcp", net.JoinHostPort(tc.dial, port), time.Second)
		if err != nil {
			t.Errorf("%s: dial %s: %v", tc.listen, tc.dial, err)
		} else {
			_ = c.Close()
		}
		g.close(g.members[0])
		_ = base.Close()
	}
}

// TestSteerSpreadsOneClient: one client's successive connections spread
// over every socket, over IPv4 and IPv6. (Kernels before 5.19 give them
// successive even ports, and the spread is exact; newer ones add random
// steps, and it is as even as chance makes it.)
func TestSteerSpreadsOneClient(t *testing.T) {
	for _, host := range []string{"127.0.0.1", "[::1]"} {
		base, addr, err := bindReuseportBase(host+":0", SocketOptions{})
		if err != nil {
			t.Logf("%s: %v (no such address here?)", host, err)
			continue
		}
		g := &rpGroup{key: host, addr: addr}
		for slot := 1; slot <= 4; slot++ {
			if _, err := g.join(slot); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.steer([]int{0, 1, 2, 3}); err != nil {
			t.Fatal(err)
		}
		got := connectN(t, g, 200)
		for slot := 1; slot <= 4; slot++ {
			if got[slot] < 25 || got[slot] > 75 { // 50 ± 4 standard deviations
				t.Errorf("%s: connections by slot %v; want about 50 each", host, got)
				break
			}
		}
		for len(g.members) > 0 {
			g.close(g.members[0])
		}
		_ = base.Close()
	}
}
