package master

import (
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// beat sends a heartbeat from p reporting requests served and rss bytes,
// and runs it.
func (h *harness) beat(p *fakeProc, requests, rss uint64) {
	h.t.Helper()
	w := h.worker(p)
	p.send(h.t, ipc.Message{Type: ipc.Heartbeat, Stats: &ipc.WorkerStats{Responses: [6]uint64{2: requests}, RSS: rss}})
	h.until(func() bool {
		st := h.m.stats.live[w]
		return st != nil && st.Requests() == requests && st.RSS == rss
	})
}

// replaceNext plays the start-up of the replacement a roll is waiting for
// and returns it.
func (h *harness) replaceNext() *fakeProc {
	h.t.Helper()
	p := h.proc(h.started() - 1)
	h.ready(p)
	return p
}

// TestRecyclingOneAtATime: workers past --max-requests are replaced one
// at a time, each only once its replacement is ready, keeping their
// generation.
func TestRecyclingOneAtATime(t *testing.T) {
	h := newHarness(t, 3, func(c *Config) { c.MaxRequests = 100 })
	h.startPool()
	old := h.sp.all()
	h.beat(old[0], 99, 0) // one short: stays
	if h.m.roll != nil {
		t.Fatal("recycled below the limit")
	}
	for _, p := range old {
		h.beat(p, 100, 0)
	}
	h.beat(old[0], 150, 0) // again, while it is replaced: not queued twice
	if r := h.m.roll; r == nil || r.recycle != LimitRequests || r.slot.id != 1 || len(h.m.recycle.queue) != 2 {
		t.Fatalf("roll %+v, queue %d", r, len(h.m.recycle.queue))
	}
	for i, p := range old {
		if got := len(h.serving()); got != 3 {
			t.Fatalf("step %d: %d ready workers", i, got)
		}
		if h.started() != 4+i {
			t.Fatalf("step %d: %d workers started; one replacement at a time", i, h.started())
		}
		next := h.replaceNext()
		if next.spec.generation != 0 || next.spec.slot != i+1 {
			t.Errorf("step %d: replacement %+v", i, next.spec)
		}
		h.stopped(p)
		h.exit(p, nil)
	}
	if h.m.roll != nil || h.m.stats.recycled[LimitRequests] != 3 || h.started() != 6 {
		t.Errorf("roll %+v, recycled %d, started %d", h.m.roll, h.m.stats.recycled[LimitRequests], h.started())
	}
}

// TestReloadDuringRecycling: a reload asked for while a worker is
// recycled is not refused: it runs when the recycling ends, before the
// recyclings still queued, which it makes moot.
func TestReloadDuringRecycling(t *testing.T) {
	h := newHarness(t, 2, func(c *Config) { c.MaxRequests = 100 })
	h.startPool()
	old := h.sp.all()
	for _, p := range old {
		h.beat(p, 100, 0)
	}
	reply := h.reload()
	if resp, ok := answered(reply); ok {
		t.Fatalf("reload during recycling answered at once: %+v", resp)
	}
	h.replaceNext()
	if r := h.m.roll; r == nil || r.recycle != "" || r.generation != 1 {
		t.Fatalf("the reload asked for meanwhile: %+v", r)
	}
	for h.m.roll != nil {
		h.replaceNext()
	}
	if resp, ok := answered(reply); ok {
		t.Fatalf("reload answered before the workers it replaced stopped accepting: %+v", resp)
	}
	for _, p := range h.sp.all() {
		if h.worker(p) != nil && h.state(p) == Draining {
			p.send(t, ipc.Message{Type: ipc.Stopped})
		}
	}
	h.until(func() bool { return len(h.m.answers) == 0 })
	if resp, ok := answered(reply); !ok || !resp.OK {
		t.Errorf("reload: %+v %v", resp, ok)
	}
	if len(h.m.recycle.queue) != 0 || h.m.stats.recycled[LimitRequests] != 1 || h.m.stats.rolls[0] != 1 {
		t.Errorf("queue %d, recycled %d, rolls %v", len(h.m.recycle.queue), h.m.stats.recycled[LimitRequests], h.m.stats.rolls)
	}
	if h.started() != 5 { // 2, one recycled, 2 rolled
		t.Errorf("%d workers started", h.started())
	}
}

// TestRecycleOnRSS: --max-rss replaces a worker whose memory passes it.
func TestRecycleOnRSS(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) { c.MaxRSS = 64 << 20 })
	h.startPool()
	p := h.proc(0)
	h.beat(p, 5, 64<<20) // at the limit: stays
	if h.m.roll != nil {
		t.Fatal("recycled at the limit")
	}
	h.beat(p, 5, 64<<20+1)
	if r := h.m.roll; r == nil || r.recycle != LimitRSS {
		t.Fatalf("roll %+v", r)
	}
	h.replaceNext()
	h.stopped(p)
	if h.m.stats.recycled[LimitRSS] != 1 {
		t.Errorf("recycled %v", h.m.stats.recycled)
	}
}

// TestHungWorkerDumpFirst: a worker whose loop is silent gets SIGQUIT
// (its goroutine dump), and SIGKILL only if it is still there dumpWait
// later.
func TestHungWorkerDumpFirst(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) { c.WorkerTimeout = 3 * time.Second })
	h.startPool()
	p := h.proc(0)
	h.advance(3*time.Second + healthEvery)
	if sigs := p.signals(); len(sigs) != 1 || sigs[0] != syscall.SIGQUIT {
		t.Fatalf("signals after the timeout: %v", sigs)
	}
	h.advance(dumpWait - healthEvery)
	if sigs := p.signals(); len(sigs) != 1 {
		t.Fatalf("signals before dumpWait is over: %v", sigs)
	}
	h.advance(2 * healthEvery)
	if sigs := p.signals(); len(sigs) != 2 || sigs[1] != syscall.SIGKILL {
		t.Fatalf("signals after dumpWait: %v", sigs)
	}
	h.until(func() bool { return h.worker(p) == nil })
	if !h.logged("worker hung: asking for a goroutine dump") {
		t.Error("no log line")
	}
}

// TestShutdownDelayThenDrain: SIGTERM makes the pool not ready at once;
// the workers are asked to drain only when the delay is over.
func TestShutdownDelayThenDrain(t *testing.T) {
	h := newHarness(t, 2, func(c *Config) { c.ShutdownDelay = 5 * time.Second })
	h.startPool()
	h.m.publish()
	if !h.m.stats.latest.Load().ready() || h.m.stats.shutting.Load() {
		t.Fatal("not ready at start")
	}
	h.m.signal(syscall.SIGTERM)
	if !h.m.stats.shutting.Load() || h.m.stopping {
		t.Fatalf("after SIGTERM: shutting %v, stopping %v", h.m.stats.shutting.Load(), h.m.stopping)
	}
	h.advance(5*time.Second - time.Millisecond)
	if h.m.stopping || len(h.serving()) != 2 {
		t.Fatalf("draining before the delay is over")
	}
	h.advance(time.Millisecond)
	if !h.m.stopping {
		t.Fatal("no graceful stop after the delay")
	}
	for _, p := range h.sp.all() {
		h.stopped(p)
	}
}
