package master

import (
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/internal/rawfd"
	"github.com/clusterd/clusterd/ipc"
)

// rrHarness is a harness in rr mode whose workers asked for 127.0.0.1:0.
func rrHarness(t *testing.T, workers int) (*harness, string) {
	t.Helper()
	h := newHarness(t, workers, func(c *Config) { c.Sched = SchedRR })
	h.m.start()
	for _, p := range h.sp.all() {
		h.rrReady(p)
	}
	return h, h.m.listeners.byKey["127.0.0.1:0"].addr
}

// rrReady plays an rr worker's start-up: it asks for the listener and gets
// no descriptor, only the promise of connections.
func (h *harness) rrReady(p *fakeProc) {
	h.t.Helper()
	p.send(h.t, ipc.Message{Type: ipc.Online})
	p.send(h.t, ipc.Message{Type: ipc.QueryServer, Addr: "127.0.0.1:0"})
	h.pump()
	h.pump()
	reply, files := p.recv(h.t)
	if reply.Type != ipc.ServerReply || !reply.RR || reply.Err != "" || len(files) != 0 {
		h.t.Fatalf("server reply %+v with %d fds", reply, len(files))
	}
	p.send(h.t, ipc.Message{Type: ipc.Listening, Key: reply.Key})
	p.send(h.t, ipc.Message{Type: ipc.Ready})
	h.until(func() bool { return h.state(p) == Ready })
}

// dial connects a client to addr and runs events until the master has
// handed the connection to a worker (or queued it).
func (h *harness) dial(addr string) net.Conn {
	h.t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = c.Close() })
	h.pump() // the accepted connection
	return c
}

// takeHandoff reads a Handoff on p and returns its seq and connection.
func takeHandoff(t *testing.T, p *fakeProc) (uint64, *os.File) {
	t.Helper()
	msg, files := p.recv(t)
	if msg.Type != ipc.Handoff || len(files) != 1 {
		t.Fatalf("worker %d: got %v with %d fds, want a handoff", p.pid, msg.Type, len(files))
	}
	return msg.Seq, files[0]
}

// serve answers the hand-off and writes to the client through the fd.
func serve(t *testing.T, h *harness, p *fakeProc, seq uint64, f *os.File, text string) {
	t.Helper()
	p.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq})
	h.until(func() bool { return len(h.m.rr.pending) == 0 })
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()
}

func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Connections go to the ready workers in turn.
func TestRRTakesTurns(t *testing.T) {
	h, addr := rrHarness(t, 2)
	var got []int
	for i := 0; i < 4; i++ {
		c := h.dial(addr)
		if len(h.m.rr.pending) != 1 {
			t.Fatalf("%d connections pending, want 1", len(h.m.rr.pending))
		}
		var p *fakeProc
		for _, ho := range h.m.rr.pending {
			p = h.proc(ho.w.pid - 1000)
		}
		seq, f := takeHandoff(t, p)
		serve(t, h, p, seq, f, "hi")
		got = append(got, p.pid)
		if s := readAll(t, c); s != "hi" {
			t.Fatalf("client read %q", s)
		}
	}
	want := []int{1000, 1001, 1000, 1001}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("served by %v, want %v", got, want)
		}
	}
}

// A connection handed to a worker that dies before answering goes to
// another worker; so does one a worker refuses.
func TestRRHandoffToDyingWorker(t *testing.T) {
	h, addr := rrHarness(t, 2)
	c := h.dial(addr)
	first, second := h.proc(0), h.proc(1)
	_, f := takeHandoff(t, first)
	_ = f.Close() // the worker dies holding it, never answering
	h.exit(first, errCrash)
	h.ready(h.proc(2)) // its replacement; the connection went on meanwhile
	seq, f2 := takeHandoff(t, second)
	p := second
	p.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq, Err: "draining"})
	h.pump()
	seq, f3 := takeHandoff(t, h.proc(2))
	_ = f2.Close()
	serve(t, h, h.proc(2), seq, f3, "served")
	if s := readAll(t, c); s != "served" {
		t.Fatalf("client read %q", s)
	}
}

// With no worker ready, connections wait in the master and go out when one
// is; beyond every worker refusing, a connection is dropped.
func TestRRQueueAndDrop(t *testing.T) {
	h, addr := rrHarness(t, 1)
	p := h.proc(0)
	h.exit(p, errCrash)
	c := h.dial(addr)
	if len(h.m.rr.queue) != 1 {
		t.Fatalf("queue %d, want the connection held", len(h.m.rr.queue))
	}
	q := h.proc(1)
	h.rrReady(q)
	seq, f := takeHandoff(t, q)
	q.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq, Err: "no"})
	h.pump()
	seq, f2 := takeHandoff(t, q) // the only worker gets a second try
	_ = f.Close()
	q.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq, Err: "no"})
	h.pump()
	_ = f2.Close()
	if len(h.m.rr.pending) != 0 || len(h.m.rr.queue) != 0 || !h.logged("dropped a connection") {
		t.Fatalf("pending %d queue %d; log:\n%s", len(h.m.rr.pending), len(h.m.rr.queue), h.logs)
	}
	if s := readAll(t, c); s != "" {
		t.Errorf("dropped connection read %q", s)
	}
	h.m.signal(syscall.SIGTERM)
	if len(h.m.rr.acceptors) != 0 {
		t.Error("acceptors left after a stop")
	}
}

// A listener that cannot be bound is reported to the worker that asked.
func TestQueryServerFails(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	h := newHarness(t, 1)
	h.m.start()
	p := h.proc(0)
	p.send(t, ipc.Message{Type: ipc.QueryServer, Addr: busy.Addr().String()})
	h.pump()
	reply, files := p.recv(t)
	if reply.Err == "" || len(files) != 0 {
		t.Errorf("reply %+v, %d fds", reply, len(files))
	}
	p.send(t, ipc.Message{Type: ipc.QueryServer, Addr: "no-port"})
	h.pump()
	if reply, _ := p.recv(t); reply.Err == "" {
		t.Errorf("bad listen value: %+v", reply)
	}
	// Shared mode: the listening socket itself travels, once per ask.
	p.send(t, ipc.Message{Type: ipc.QueryServer, Addr: "127.0.0.1:0"})
	h.pump()
	reply, files = p.recv(t)
	if reply.Err != "" || reply.RR || len(files) != 1 {
		t.Fatalf("shared reply %+v with %d fds", reply, len(files))
	}
	ln, err := net.FileListener(files[0])
	_ = files[0].Close()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.Addr().String() != h.m.listeners.byKey["127.0.0.1:0"].addr {
		t.Errorf("worker got %v, master bound %v", ln.Addr(), h.m.listeners.byKey["127.0.0.1:0"].addr)
	}
}

// Under least-conns a connection goes to the worker with the fewest open
// connections: those it last reported plus those handed to it since.
func TestRRLeastConns(t *testing.T) {
	h := newHarness(t, 2, func(c *Config) { c.Sched = SchedRR; c.RRPolicy = RRPolicyLeastConns })
	h.m.start()
	for _, p := range h.sp.all() {
		h.rrReady(p)
	}
	addr := h.m.listeners.byKey["127.0.0.1:0"].addr
	busy, idle := h.proc(0), h.proc(1)
	busy.send(t, ipc.Message{Type: ipc.Heartbeat, Connections: 3})
	idle.send(t, ipc.Message{Type: ipc.Heartbeat, Connections: 0, Requests: 1})
	h.until(func() bool { return h.worker(busy).conns == 3 && h.worker(idle).requests == 1 })
	var got []int
	open := map[*fakeProc]int64{busy: 3}
	for i := 0; i < 5; i++ {
		h.dial(addr)
		h.until(func() bool { return len(h.m.rr.pending) == 1 })
		var p *fakeProc
		for _, ho := range h.m.rr.pending {
			p = h.proc(ho.w.pid - 1000)
		}
		seq, f := takeHandoff(t, p)
		_ = f.Close()
		open[p]++ // the client keeps each connection open
		p.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: seq, Connections: open[p]})
		h.until(func() bool { return len(h.m.rr.pending) == 0 && h.worker(p).conns == open[p] })
		got = append(got, p.pid)
	}
	// idle: 0, 1, 2 open → ties with busy's 3, then they alternate.
	want := []int{1001, 1001, 1001, 1000, 1001}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("served by %v, want %v", got, want)
		}
	}
	// A heartbeat replaces the estimate with what the worker counts.
	idle.send(t, ipc.Message{Type: ipc.Heartbeat, Connections: 9})
	h.until(func() bool { return h.worker(idle).conns == 9 })
	if w := h.m.pick(); w != h.worker(busy) {
		t.Errorf("picked worker %d after the heartbeat, want the busy one (now the less loaded)", w.slot)
	}
}

// A batch travels in one Handoff; its reply settles every connection in
// it, and those refused go to another worker.
func TestRRBatchReply(t *testing.T) {
	h, _ := rrHarness(t, 2)
	first, second := h.proc(0), h.proc(1)
	var hs []*handoff
	for i := 0; i < 3; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		fd, err := rawfd.DupFile(w)
		_ = w.Close()
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, &handoff{fd: fd})
	}
	if w := h.m.pick(); w != h.worker(first) {
		t.Fatalf("picked worker %d first", w.slot)
	}
	h.m.handTo(h.worker(first), hs)
	msg, files := first.recv(t)
	if msg.Type != ipc.Handoff || msg.Conns() != 3 || len(files) != 3 || len(h.m.rr.pending) != 3 {
		t.Fatalf("got %+v with %d fds, %d pending", msg, len(files), len(h.m.rr.pending))
	}
	closeFiles(files)
	first.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq, N: 3, Refused: []uint64{msg.Seq + 1}, Err: "EMFILE"})
	h.until(func() bool { return len(h.m.rr.pending) == 1 })
	for _, ho := range h.m.rr.pending {
		if ho.fd != hs[1].fd || ho.w == h.worker(first) {
			t.Fatalf("pending %+v; want the refused connection, at another worker", ho)
		}
	}
	msg, files = second.recv(t)
	if msg.Type != ipc.Handoff || len(files) != 1 {
		t.Fatalf("second worker got %+v with %d fds", msg, len(files))
	}
	closeFiles(files)
	second.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq})
	h.until(func() bool { return len(h.m.rr.pending) == 0 })
}
