package master

import (
	"errors"
	"net"
	"os"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
	"github.com/clusterd/clusterd/internal/scoreboard"
	"github.com/clusterd/clusterd/ipc"
)

const rpKey = "127.0.0.1:0"

// rpHarness is a harness under reuseport scheduling that listens on rpKey
// and has started its pool; its slot sockets close before it ends.
func rpHarness(t *testing.T, workers int, opts ...func(*Config)) (*harness, *rpGroup) {
	t.Helper()
	h := newHarness(t, workers, append([]func(*Config){func(c *Config) { c.Sched = SchedReuseport }}, opts...)...)
	t.Cleanup(func() { h.m.rpCloseAll() })
	if err := h.m.openListeners([]string{rpKey}); err != nil {
		t.Fatal(err)
	}
	g := h.m.rp.groups[rpKey]
	if g == nil {
		t.Fatal("no reuseport group for the listener")
	}
	h.m.start()
	return h, g
}

// inode identifies a socket.
func inode(t *testing.T, f *os.File) uint64 {
	t.Helper()
	fd, err := rawfd.Of(f)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// rpQuery plays p asking for the listener, and returns the inode of the
// socket it got.
func (h *harness) rpQuery(p *fakeProc) uint64 {
	h.t.Helper()
	p.send(h.t, ipc.Message{Type: ipc.QueryServer, Addr: rpKey})
	h.pump()
	reply, files := p.recv(h.t)
	defer closeFiles(files)
	if reply.Type != ipc.ServerReply || reply.RR || reply.Err != "" || len(files) != 1 {
		h.t.Fatalf("server reply %+v with %d fds", reply, len(files))
	}
	return inode(h.t, files[0])
}

// slotSocket returns slot's socket in g that is not leaving.
func slotSocket(t *testing.T, g *rpGroup, slot int) *rpSocket {
	t.Helper()
	for _, s := range g.members {
		if s.slot == slot && !s.leaving {
			return s
		}
	}
	t.Fatalf("slot %d has no socket; members %v", slot, g.members)
	return nil
}

// steeredSlots are the slots the group's program sends connections to.
func steeredSlots(g *rpGroup) []int {
	var out []int
	for _, i := range g.steered {
		out = append(out, g.members[i].slot)
	}
	slices.Sort(out)
	return out
}

// TestReuseportSlotSockets: every slot has its own socket before its
// worker starts, and its worker gets it; connections go to every socket
// while no worker serves, then to the serving workers' only; a worker
// that crashes is replaced with the same socket, its queue kept.
func TestReuseportSlotSockets(t *testing.T) {
	h, g := rpHarness(t, 2)
	if len(g.members) != 2 || !slices.Equal(steeredSlots(g), []int{1, 2}) {
		t.Fatalf("at start: %d sockets, steered to slots %v", len(g.members), steeredSlots(g))
	}
	s1, s2 := slotSocket(t, g, 1), slotSocket(t, g, 2)
	if got := h.rpQuery(h.proc(0)); got != inode(t, s1.file) {
		t.Error("worker 1 did not get slot 1's socket")
	}
	if got := h.rpQuery(h.proc(1)); got != inode(t, s2.file) || got == inode(t, s1.file) {
		t.Error("worker 2 did not get a socket of its own")
	}
	h.ready(h.proc(0))
	if got := steeredSlots(g); !slices.Equal(got, []int{1}) {
		t.Fatalf("one worker serving: steered to %v, want [1]", got)
	}
	h.ready(h.proc(1))
	if got := steeredSlots(g); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("both serving: steered to %v", got)
	}

	// A connection waits in slot 1's queue while its worker crashes.
	if err := g.steer([]int{slices.Index(g.members, s1)}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", g.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h.exit(h.proc(0), errors.New("exit status 2"))
	if got := steeredSlots(g); !slices.Equal(got, []int{2}) {
		t.Errorf("slot 1's worker gone: steered to %v, want [2]", got)
	}
	h.until(func() bool { return h.started() == 3 }) // no back-off on a first crash
	if slotSocket(t, g, 1) != s1 || len(g.members) != 2 {
		t.Fatal("slot 1's socket was replaced across a crash")
	}
	if q, err := s1.queued(); err != nil || q != 1 {
		t.Errorf("slot 1's queue across the crash: %d %v, want 1", q, err)
	}
	if got := h.rpQuery(h.proc(2)); got != inode(t, s1.file) {
		t.Error("the replacement did not get slot 1's socket")
	}
	h.ready(h.proc(2))
	if got := steeredSlots(g); !slices.Equal(got, []int{1, 2}) {
		t.Errorf("replacement serving: steered to %v", got)
	}
}

// TestReuseportScaleDownEmpty: a slot scaled away is steered clear at
// once; its worker drains once the socket has settled empty, and the
// socket closes when the worker has exited.
func TestReuseportScaleDownEmpty(t *testing.T) {
	h, g := rpHarness(t, 2)
	for _, p := range h.sp.all() {
		h.rpQuery(p)
		h.ready(p)
	}
	s2 := slotSocket(t, g, 2)
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	if !s2.leaving || !slices.Equal(steeredSlots(g), []int{1}) {
		t.Fatalf("after scaling down: slot 2 leaving %v, steered to %v", s2.leaving, steeredSlots(g))
	}
	p2 := h.proc(1)
	h.advance(leaveEvery)
	if st := h.state(p2); st != Ready {
		t.Fatalf("slot 2's worker %v before its socket settled", st)
	}
	for elapsed := leaveEvery; elapsed < leaveSettle; elapsed += leaveEvery {
		h.advance(leaveEvery)
	}
	if st := h.state(p2); st != Draining {
		t.Fatalf("slot 2's worker %v once its socket settled empty, want draining", st)
	}
	p2.expect(t, ipc.Drain)
	if len(g.members) != 2 {
		t.Fatal("the leaving socket closed before its worker exited")
	}
	h.exit(p2, nil)
	if len(g.members) != 1 || g.members[0].slot != 1 || !h.logged("reuseport sockets closed: id=2") {
		t.Errorf("after the leaving worker exited: %d sockets", len(g.members))
	}
	if _, err := s2.queued(); err == nil {
		t.Error("the leaving socket is still open")
	}
	if len(h.m.rp.leaving) != 0 {
		t.Errorf("%d slots still leaving", len(h.m.rp.leaving))
	}
	h.advance(leaveEvery)
	if h.m.rp.tick != nil {
		t.Error("the leave ticker runs with no slot leaving")
	}
}

// TestReuseportScaleDownSweeps: a leaving slot whose queue does not empty
// keeps its worker up to the graceful timeout; then the worker drains and
// the master hands what is still queued to the other workers.
func TestReuseportScaleDownSweeps(t *testing.T) {
	h, g := rpHarness(t, 2, func(c *Config) { c.GracefulTimeout = time.Second })
	for _, p := range h.sp.all() {
		h.rpQuery(p)
		h.ready(p)
	}
	s2 := slotSocket(t, g, 2)
	if err := g.steer([]int{slices.Index(g.members, s2)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if q, _ := s2.queued(); q != 3 {
		t.Fatalf("slot 2 queued %d, want 3", q)
	}
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	p1, p2 := h.proc(0), h.proc(1)
	for elapsed := time.Duration(0); elapsed < time.Second-leaveEvery; elapsed += leaveEvery {
		h.advance(leaveEvery)
	}
	if st := h.state(p2); st != Ready {
		t.Fatalf("slot 2's worker %v while its queue holds connections", st)
	}
	h.advance(leaveEvery)
	if st := h.state(p2); st != Draining {
		t.Fatalf("slot 2's worker %v after the graceful timeout, want draining", st)
	}
	var seqs []uint64
	for len(seqs) < 3 {
		msg, files := p1.recv(t)
		closeFiles(files)
		if msg.Type != ipc.Handoff || len(files) != msg.Conns() || msg.Idle {
			t.Fatalf("slot 1's worker got %v with %d fds (idle %v), want hand-offs of new connections", msg.Type, len(files), msg.Idle)
		}
		for i := 0; i < msg.Conns(); i++ {
			seqs = append(seqs, msg.Seq+uint64(i))
		}
	}
	if q, _ := s2.queued(); q != 0 {
		t.Errorf("slot 2 still queues %d", q)
	}
	for _, seq := range seqs {
		p1.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq})
	}
	h.until(func() bool { return len(h.m.rr.pending) == 0 })
	if n := h.m.rr.held.Load(); n != 0 {
		t.Errorf("the master still holds %d connections", n)
	}
}

// TestReuseportNeedsTCP: a listener the master does not bind over TCP is
// shared, with a warning.
func TestReuseportNeedsTCP(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) { c.Sched = SchedReuseport })
	key := "unix:" + t.TempDir() + "/s.sock"
	if err := h.m.openListeners([]string{key}); err != nil {
		t.Fatal(err)
	}
	if len(h.m.rp.groups) != 0 || !h.logged("reuseport scheduling needs a TCP address the master binds") {
		t.Errorf("a Unix listener under reuseport: %d groups", len(h.m.rp.groups))
	}
}

// TestReuseportRollKeepsSockets: a rolling restart's replacement gets its
// slot's socket, the one the old worker drains from.
func TestReuseportRollKeepsSockets(t *testing.T) {
	h, g := rpHarness(t, 1)
	old := h.proc(0)
	first := h.rpQuery(old)
	h.ready(old)
	h.reload()
	h.until(func() bool { return h.started() == 2 })
	next := h.proc(1)
	if got := h.rpQuery(next); got != first {
		t.Error("the replacement did not get its slot's socket")
	}
	if !slices.Equal(steeredSlots(g), []int{1}) || len(g.members) != 1 {
		t.Errorf("during the roll: %d sockets, steered to %v", len(g.members), steeredSlots(g))
	}
	h.ready(next)
	if st := h.state(old); st != Draining {
		t.Fatalf("old worker %v after its replacement is ready", st)
	}
	h.exit(old, nil)
	if len(g.members) != 1 || slotSocket(t, g, 1).file == nil {
		t.Errorf("after the roll: %d sockets", len(g.members))
	}
	if q, err := slotSocket(t, g, 1).queued(); err != nil || q != 0 {
		t.Errorf("slot 1's socket after the roll: %d %v", q, err)
	}
}

// TestReuseportScaleDownBackingOff: a slot scaled away while its worker
// waits out a crash back-off has no worker to drain: at the next tick the
// master hands what its socket queued to the others, then closes it.
func TestReuseportScaleDownBackingOff(t *testing.T) {
	h, g := rpHarness(t, 2)
	for _, p := range h.sp.all() {
		h.rpQuery(p)
		h.ready(p)
	}
	s2 := slotSocket(t, g, 2)
	h.exit(h.proc(1), errors.New("exit status 1"))
	h.until(func() bool { return h.started() == 3 }) // a first crash: at once
	h.exit(h.proc(2), errors.New("exit status 1"))   // a second: backs off
	if h.m.slots[2].worker != nil || h.m.slots[2].respawn == nil {
		t.Fatal("slot 2 is not backing off")
	}
	if err := g.steer([]int{slices.Index(g.members, s2)}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", g.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	h.advance(leaveEvery)
	p1 := h.proc(0)
	msg, files := p1.recv(t)
	closeFiles(files)
	if msg.Type != ipc.Handoff || len(files) != 1 {
		t.Fatalf("slot 1's worker got %v with %d fds, want the queued connection", msg.Type, len(files))
	}
	if len(g.members) != 1 || g.members[0].slot != 1 || len(h.m.rp.leaving) != 0 {
		t.Errorf("slot 2's socket not closed: %d sockets", len(g.members))
	}
	if h.started() != 3 {
		t.Errorf("slot 2 was refilled after it was scaled away")
	}
	p1.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq})
	h.until(func() bool { return len(h.m.rr.pending) == 0 })
}

// giveConns plays p giving the master n connections (ipc.Pass): socket
// pairs whose other ends are returned.
func giveConns(t *testing.T, p *fakeProc, n int) []*os.File {
	t.Helper()
	var given, kept []*os.File
	for range n {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		given = append(given, os.NewFile(uintptr(fds[0]), "given"))
		kept = append(kept, os.NewFile(uintptr(fds[1]), "kept"))
	}
	t.Cleanup(func() { closeFiles(kept) })
	msg := ipc.Message{Type: ipc.Pass}
	if n > 1 {
		msg.N = n
	}
	if err := p.conn.Send(msg, given...); err != nil {
		t.Fatal(err)
	}
	closeFiles(given)
	return kept
}

// TestReuseportGivenConnsGoToTheFewest: the connections a worker gives
// away go, one hand-off per worker, to the ready worker with the fewest
// open (on the board), handed and queued connections; to the giver
// itself when it has the fewest.
func TestReuseportGivenConnsGoToTheFewest(t *testing.T) {
	h := newHarness(t, 3, func(c *Config) { c.Sched = SchedReuseport })
	t.Cleanup(func() { h.m.rpCloseAll() })
	h.m.openBoard()
	t.Cleanup(h.m.closeBoard)
	if err := h.m.openListeners([]string{rpKey}); err != nil {
		t.Fatal(err)
	}
	g := h.m.rp.groups[rpKey]
	h.m.start()
	ps := []*fakeProc{h.proc(0), h.proc(1), h.proc(2)}
	for _, p := range ps {
		h.rpQuery(p)
		h.ready(p)
	}
	open := func(p *fakeProc, n int) {
		scoreboard.NewGate(h.m.board, h.worker(p).boardSlot, -1).Conns(n)
	}
	open(ps[0], 10)
	open(ps[1], 2)
	// 4 connections wait in the third worker's queue, none is open.
	third := slotSocket(t, g, h.worker(ps[2]).slot)
	if err := g.steer([]int{slices.Index(g.members, third)}); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		c, err := net.DialTimeout("tcp", g.addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	h.until(func() bool { q, _ := third.queued(); return q == 4 })

	// The second worker takes both (2 and 3 against 4 and 10).
	giveConns(t, ps[0], 2)
	h.until(func() bool { return len(h.m.rr.pending) == 2 })
	msg, files := ps[1].recv(t)
	closeFiles(files)
	if msg.Type != ipc.Handoff || msg.Conns() != 2 || len(files) != 2 || !msg.Idle {
		t.Fatalf("second worker got %v of %d connections with %d fds (idle %v), want an idle hand-off of 2", msg.Type, msg.Conns(), len(files), msg.Idle)
	}
	ps[1].send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq, N: msg.N, Connections: 4})
	h.until(func() bool { return len(h.m.rr.pending) == 0 })
	open(ps[1], 2)

	// Now the giver has the fewest (1 against 4 and 4): it comes back.
	open(ps[0], -9)
	giveConns(t, ps[0], 1)
	h.until(func() bool { return len(h.m.rr.pending) == 1 })
	msg, files = ps[0].recv(t)
	closeFiles(files)
	if msg.Type != ipc.Handoff || msg.Conns() != 1 || !msg.Idle {
		t.Fatalf("giver got %v of %d connections (idle %v), want its own idle one back", msg.Type, msg.Conns(), msg.Idle)
	}
	ps[0].send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq, Connections: 2})
	h.until(func() bool { return len(h.m.rr.pending) == 0 && h.m.rr.held.Load() == 0 })
}

// TestReuseportGivenConnStaysIdle: a given connection that a worker
// refuses goes to another still marked idle.
func TestReuseportGivenConnStaysIdle(t *testing.T) {
	h, _ := rpHarness(t, 2)
	for _, p := range h.sp.all() {
		h.rpQuery(p)
		h.ready(p)
	}
	giveConns(t, h.proc(0), 1)
	for round := range 2 {
		h.until(func() bool { return len(h.m.rr.pending) == 1 })
		var p *fakeProc
		for _, ho := range h.m.rr.pending {
			p = h.proc(ho.w.pid - 1000)
		}
		msg, files := p.recv(t)
		closeFiles(files)
		if msg.Type != ipc.Handoff || !msg.Idle || len(files) != 1 {
			t.Fatalf("round %d: %v with %d fds (idle %v), want an idle hand-off of 1", round, msg.Type, len(files), msg.Idle)
		}
		reply := ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq}
		if round == 0 {
			reply.Err = "draining"
		}
		p.send(t, reply)
		h.until(func() bool { _, ok := h.m.rr.pending[msg.Seq]; return !ok })
	}
	if n := h.m.rr.held.Load(); n != 0 {
		t.Errorf("the master still holds %d connections", n)
	}
}
