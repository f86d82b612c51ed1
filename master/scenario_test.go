package master

import (
	"errors"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

var errCrash = errors.New("exit status 2")

func TestStartAndGracefulStop(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	if got := h.serving(); len(got) != 2 {
		t.Fatalf("serving %v, want 2 workers", got)
	}
	h.m.signal(syscall.SIGTERM)
	for _, p := range h.sp.all() {
		h.stopped(p)
		h.exit(p, nil)
	}
	if !h.m.finished() {
		t.Error("master not finished after every worker drained")
	}
	if h.started() != 2 || !h.logged("worker exited") {
		t.Errorf("started %d workers; log:\n%s", h.started(), h.logs)
	}
}

// A crash of a worker the roll has not reached yet: the slot is refilled
// with the new generation at once, and the roll does not replace it again.
func TestCrashDuringRoll(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	old1, old2 := h.proc(0), h.proc(1)
	reply := h.reload()
	next1 := h.proc(2)
	if next1.spec.slot != 1 || next1.spec.generation != 1 {
		t.Fatalf("first replacement: %+v", next1.spec)
	}
	h.exit(old2, errCrash)
	refill := h.proc(3)
	if refill.spec.slot != 2 || refill.spec.generation != 1 {
		t.Fatalf("slot 2 refilled with %+v, want generation 1", refill.spec)
	}
	h.ready(refill)
	h.ready(next1)
	h.stopped(old1)
	resp, ok := answered(reply)
	if !ok || !resp.OK {
		t.Fatalf("roll answer %+v (answered %v)", resp, ok)
	}
	if h.started() != 4 {
		t.Errorf("%d workers started; the roll replaced the refilled slot again", h.started())
	}
	h.exit(old1, nil)
	if got := h.serving(); got[1] != next1.pid || got[2] != refill.pid {
		t.Errorf("serving %v", got)
	}
}

// A replacement that dies before it is ready aborts the roll; the old
// workers keep serving and the caller hears why.
func TestReplacementFailsAbortsRoll(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	reply := h.reload()
	h.exit(h.proc(2), errCrash)
	resp, ok := answered(reply)
	if !ok || resp.OK || resp.Error == "" {
		t.Fatalf("roll answer %+v (answered %v)", resp, ok)
	}
	if got := h.serving(); got[1] != h.proc(0).pid || got[2] != h.proc(1).pid {
		t.Errorf("serving %v, want the old workers", got)
	}
	if h.m.roll != nil || h.started() != 3 {
		t.Errorf("roll %v, %d started", h.m.roll, h.started())
	}
}

// A replacement that cannot even start aborts the roll too.
func TestReplacementCannotStart(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	h.sp.fail = errors.New("fork: resource temporarily unavailable")
	resp, ok := answered(h.reload())
	if !ok || resp.OK {
		t.Fatalf("roll answer %+v (answered %v)", resp, ok)
	}
	if got := h.serving(); got[1] != h.proc(0).pid {
		t.Errorf("serving %v", got)
	}
}

// Scaling down during a roll: the slot being replaced goes, its
// half-started replacement is killed, the roll skips the removed slots.
func TestScaleDownDuringRoll(t *testing.T) {
	h := newHarness(t, 3)
	h.startPool()
	reply := h.reload()
	h.ready(h.proc(3)) // slot 1, generation 1
	h.stopped(h.proc(0))
	next2 := h.proc(4)
	if next2.spec.slot != 2 {
		t.Fatalf("second replacement for %+v", next2.spec)
	}
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	if sigs := next2.signals(); !slices.Contains(sigs, syscall.SIGKILL) {
		t.Errorf("replacement of a removed slot got %v, want SIGKILL", sigs)
	}
	h.stopped(h.proc(1))
	h.stopped(h.proc(2))
	resp, ok := answered(reply)
	if !ok || !resp.OK {
		t.Fatalf("roll answer %+v (answered %v)", resp, ok)
	}
	for _, i := range []int{0, 1, 2, 4} {
		h.exit(h.proc(i), nil)
	}
	if got := h.serving(); len(got) != 1 || got[1] != h.proc(3).pid || len(h.m.workers) != 1 {
		t.Errorf("serving %v, workers %d", got, len(h.m.workers))
	}
	if h.started() != 5 {
		t.Errorf("%d started", h.started())
	}
}

// A reload asked for during a reload is refused to ctl; a SIGHUP is queued
// and rolls once more after the running roll.
func TestReloadDuringReload(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	first := h.reload()
	resp, ok := answered(h.reload())
	if !ok || resp.OK || resp.Error != errRolling.Error() {
		t.Errorf("second reload: %+v", resp)
	}
	h.m.signal(syscall.SIGHUP)
	h.m.signal(syscall.SIGHUP)
	if !h.logged("reload queued") {
		t.Error("a SIGHUP during a roll was not logged")
	}
	h.ready(h.proc(1))
	h.stopped(h.proc(0))
	if resp, ok := answered(first); !ok || !resp.OK {
		t.Fatalf("first roll: %+v", resp)
	}
	if h.m.roll == nil || h.m.roll.generation != 2 {
		t.Fatalf("no second roll after the queued SIGHUP: %+v", h.m.roll)
	}
	h.ready(h.proc(2))
	if h.m.roll != nil || h.started() != 3 {
		t.Errorf("two SIGHUPs during a roll made %d workers (roll %v)", h.started(), h.m.roll)
	}
}

// A failed roll drops a queued SIGHUP instead of retrying a bad binary.
func TestQueuedReloadDroppedWhenRollFails(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	h.m.signal(syscall.SIGHUP)
	h.m.signal(syscall.SIGHUP)
	h.exit(h.proc(1), errCrash)
	if h.m.roll != nil || !h.logged("queued reload dropped") {
		t.Errorf("roll %v; log:\n%s", h.m.roll, h.logs)
	}
}

// Back-off: an immediate restart, then waits doubling from 100ms; a worker
// that stayed up for the stable period resets the count.
func TestBackoffGrowthAndReset(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	h.exit(h.proc(0), errCrash)
	if h.started() != 2 {
		t.Fatalf("first crash: %d started, want an immediate restart", h.started())
	}
	for i, wait := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		h.ready(h.proc(i + 1))
		h.exit(h.proc(i+1), errCrash)
		h.advance(wait - time.Millisecond)
		if h.started() != i+2 {
			t.Fatalf("crash %d: restarted before %v", i+2, wait)
		}
		h.advance(time.Millisecond)
		if h.started() != i+3 {
			t.Fatalf("crash %d: not restarted after %v", i+2, wait)
		}
	}
	p := h.proc(4)
	h.ready(p)
	h.advance(stablePeriod)
	if s := h.m.slots[1]; s.crashes != 4 || s.restarts != 4 {
		t.Errorf("crashes %d, restarts %d", s.crashes, s.restarts)
	}
	p.send(t, ipc.Message{Type: ipc.Heartbeat})
	h.until(func() bool { return h.worker(p).lastTick.Equal(h.clk.Now()) })
	h.exit(p, errCrash)
	if h.started() != 6 || h.m.slots[1].crashes != 1 {
		t.Errorf("after a stable run: %d started, crashes %d; want an immediate restart", h.started(), h.m.slots[1].crashes)
	}
}

// A respawn pending when the master stops, or when its slot is scaled
// away, never starts.
func TestPendingRespawnCancelled(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	h.exit(h.proc(1), errCrash) // slot 2: immediate restart
	h.exit(h.proc(2), errCrash) // slot 2 again: 100ms back-off
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	h.advance(time.Second)
	if h.started() != 3 {
		t.Errorf("%d started; a removed slot was refilled", h.started())
	}
	h.exit(h.proc(0), errCrash) // slot 1: immediate restart
	h.exit(h.proc(3), errCrash) // slot 1: back-off
	h.m.signal(syscall.SIGTERM)
	h.advance(time.Second)
	if h.started() != 4 || !h.m.finished() {
		t.Errorf("%d started, finished %v", h.started(), h.m.finished())
	}
}

// A worker that cannot be started is retried after a back-off.
func TestStartFailureRetried(t *testing.T) {
	h := newHarness(t, 1)
	h.sp.fail = errors.New("fork: resource temporarily unavailable")
	h.m.start()
	if h.started() != 0 || !h.logged("cannot start worker") {
		t.Fatalf("started %d", h.started())
	}
	h.sp.fail = nil
	h.advance(backoff(2))
	if h.started() != 1 {
		t.Fatalf("not retried after %v", backoff(2))
	}
}

// A draining worker that does not exit is killed after the graceful
// timeout, and its slot is not refilled twice.
func TestHangWhileDraining(t *testing.T) {
	h := newHarness(t, 2, func(c *Config) { c.WorkerTimeout = time.Hour })
	h.startPool()
	if err := h.m.scale(1); err != nil {
		t.Fatal(err)
	}
	p := h.proc(1)
	h.stopped(p)
	h.advance(h.m.cfg.GracefulTimeout)
	if len(p.signals()) != 0 {
		t.Fatalf("killed before the graceful timeout: %v", p.signals())
	}
	h.advance(healthEvery)
	h.until(func() bool { return h.worker(p) == nil })
	if !slices.Contains(p.signals(), syscall.SIGKILL) || !h.logged("still draining after") {
		t.Errorf("signals %v; log:\n%s", p.signals(), h.logs)
	}
	if h.started() != 2 {
		t.Errorf("%d started", h.started())
	}
}

// A ready worker that stops sending heartbeats is killed and replaced; one
// that never gets ready is killed after the ready timeout.
func TestHangAndReadyTimeout(t *testing.T) {
	h := newHarness(t, 1, func(c *Config) { c.WorkerTimeout = 3 * time.Second; c.ReadyTimeout = 2 * time.Second })
	h.startPool()
	p := h.proc(0)
	for i := 0; i < 4; i++ {
		h.advance(time.Second)
		p.send(t, ipc.Message{Type: ipc.Heartbeat, LoopAge: 10 * time.Millisecond, Requests: uint64(i)})
		h.until(func() bool { return h.worker(p).requests == uint64(i) })
	}
	h.advance(3*time.Second + healthEvery)
	h.advance(dumpWait + healthEvery) // SIGQUIT for its goroutine dump first; this one does not exit
	h.until(func() bool { return h.worker(p) == nil })
	if !h.logged("event loop silent") || h.started() != 2 {
		t.Fatalf("started %d; log:\n%s", h.started(), h.logs)
	}
	q := h.proc(1)
	q.send(t, ipc.Message{Type: ipc.Online})
	h.until(func() bool { return h.state(q) == Online })
	h.advance(2*time.Second + healthEvery)
	h.until(func() bool { return h.worker(q) == nil })
	h.advance(backoff(2))
	if !h.logged("not ready within 2s") || h.started() != 3 {
		t.Errorf("started %d; log:\n%s", h.started(), h.logs)
	}
}

// During a graceful stop, a worker past the graceful timeout is killed and
// the master finishes.
func TestGracefulDeadlineDuringStop(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	h.m.signal(syscall.SIGINT)
	h.stopped(h.proc(0))
	h.stopped(h.proc(1))
	h.exit(h.proc(0), nil)
	h.advance(h.m.cfg.GracefulTimeout + healthEvery)
	h.until(func() bool { return h.m.finished() })
	if !slices.Contains(h.proc(1).signals(), syscall.SIGKILL) || slices.Contains(h.proc(0).signals(), syscall.SIGKILL) {
		t.Errorf("signals: %v %v", h.proc(0).signals(), h.proc(1).signals())
	}
	if h.started() != 2 {
		t.Errorf("%d started during a stop", h.started())
	}
}

// A second stop signal, or SIGQUIT, kills at once.
func TestSecondStopSignal(t *testing.T) {
	for _, second := range []syscall.Signal{syscall.SIGTERM, syscall.SIGQUIT} {
		t.Run(second.String(), func(t *testing.T) {
			h := newHarness(t, 2)
			h.startPool()
			h.m.signal(syscall.SIGTERM)
			h.m.signal(second)
			h.until(func() bool { return h.m.finished() })
			for _, p := range h.sp.all() {
				if !slices.Contains(p.signals(), syscall.SIGKILL) {
					t.Errorf("worker %d: %v", p.pid, p.signals())
				}
			}
			if resp, _ := answered(h.reload()); resp.OK {
				t.Error("reload accepted while stopping")
			}
			if err := h.m.scale(3); err == nil {
				t.Error("scale accepted while stopping")
			}
		})
	}
}

// SIGTTIN and SIGTTOU add and remove a worker, never below one.
func TestScaleSignals(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	h.m.signal(syscall.SIGTTIN)
	if len(h.m.slots) != 2 || h.started() != 2 {
		t.Fatalf("SIGTTIN: %d slots", len(h.m.slots))
	}
	h.m.signal(syscall.SIGTTOU)
	h.m.signal(syscall.SIGTTOU)
	if len(h.m.slots) != 1 || !h.logged("scale refused") {
		t.Errorf("SIGTTOU twice: %d slots; log:\n%s", len(h.m.slots), h.logs)
	}
	if err := h.m.scale(MaxWorkers + 1); err == nil {
		t.Error("scale beyond MaxWorkers accepted")
	}
	h.m.signal(syscall.SIGPIPE) // ignored
}

// The supervisor ignores what a worker should not send and closes any
// descriptor that came with it.
func TestUnexpectedMessages(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	p := h.proc(0)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := p.conn.Send(ipc.Message{Type: ipc.Handoff, Seq: 1}, w); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	p.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: 99})
	p.send(t, ipc.Message{Type: ipc.Listening, Key: "tcp:x"})
	p.send(t, ipc.Message{Type: ipc.Heartbeat, Requests: 7})
	h.until(func() bool { return h.worker(p).requests == 7 })
	if !h.logged("unexpected message from worker") || !h.logged("answer for an unknown connection") {
		t.Errorf("log:\n%s", h.logs)
	}
	// The master's copy of the descriptor was closed: the pipe reads EOF.
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := r.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("read %d, %v; want EOF", n, err)
	}
}

// The service manager hears READY=1 when the pool serves, RELOADING=1 and
// READY=1 around a roll, STOPPING=1 on a stop, and watchdog pings while
// the supervisor turns.
func TestServiceManagerNotified(t *testing.T) {
	h := newHarness(t, 2)
	var sent []string
	h.m.sd = &notifier{log: h.m.log, interval: time.Second, send: func(s string) error {
		sent = append(sent, strings.SplitN(s, "\n", 2)[0])
		return nil
	}}
	h.startPool()
	h.reload()
	h.ready(h.proc(2))
	h.ready(h.proc(3))
	h.advance(time.Second)
	h.m.signal(syscall.SIGTERM)
	h.m.notifyServiceManager()
	var states []string
	for _, s := range sent {
		if !strings.HasPrefix(s, "STATUS=") && s != "WATCHDOG=1" {
			states = append(states, s)
		}
	}
	if want := []string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}; !slices.Equal(states, want) {
		t.Errorf("sent %v, want %v (all: %q)", states, want, sent)
	}
	if !slices.Contains(sent, "WATCHDOG=1") || !slices.Contains(sent, "STATUS=2/2 workers ready, generation 1") {
		t.Errorf("sent %q", sent)
	}
}

// A roll answers once the workers it replaced have said they accept no
// more connections, so that every connection made after the answer goes
// to the new generation; one that never says so holds the answer back
// for stopWait at most.
func TestRollAnswersOnceReplacedStopAccepting(t *testing.T) {
	h := newHarness(t, 2)
	h.startPool()
	old1, old2 := h.proc(0), h.proc(1)
	reply := h.reload()
	h.ready(h.proc(2))
	h.stopped(old1)
	h.ready(h.proc(3))
	old2.expect(t, ipc.Drain)
	if h.m.roll != nil {
		t.Fatal("the roll is not over")
	}
	if resp, ok := answered(reply); ok {
		t.Fatalf("answered while a replaced worker may still accept: %+v", resp)
	}
	old2.send(t, ipc.Message{Type: ipc.Stopped})
	h.until(func() bool { return len(h.m.answers) == 0 })
	if resp, ok := answered(reply); !ok || !resp.OK {
		t.Fatalf("roll answer %+v (answered %v)", resp, ok)
	}

	// A replaced worker that never says so: the answer comes after stopWait.
	reply = h.reload()
	h.ready(h.proc(4))
	h.proc(2).expect(t, ipc.Drain)
	h.ready(h.proc(5))
	h.proc(3).expect(t, ipc.Drain)
	h.advance(stopWait - time.Millisecond)
	if _, ok := answered(reply); ok {
		t.Fatal("answered before stopWait")
	}
	h.advance(time.Millisecond)
	h.until(func() bool { return len(h.m.answers) == 0 })
	if resp, ok := answered(reply); !ok || !resp.OK {
		t.Fatalf("after stopWait: roll answer %+v (answered %v)", resp, ok)
	}
}
