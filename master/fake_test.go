package master

import (
	"errors"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/ipc"
)

// The supervisor's tests run it on the test goroutine: a fake spawner
// plays the workers over real ipc socketpairs, a fake clock fires the
// timers when the test advances it, and the test runs the events the
// supervisor receives one at a time. Nothing sleeps and no process starts.

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c    *fakeClock
	at   time.Time
	f    func()
	done bool // fired or stopped
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.done
	t.done = true
	return was
}

// advance moves the clock by d and runs the timers now due, in order.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	live := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t)
		default:
			live = append(live, t)
		}
	}
	c.timers = live
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// fakeProc is a worker process played by the test through its end of the
// ipc channel.
type fakeProc struct {
	pid  int
	spec spawnSpec
	conn *ipc.Conn // the worker's end
	logW *io.PipeWriter

	mu     sync.Mutex
	sigs   []syscall.Signal
	exited chan struct{}
	once   sync.Once
	err    error
}

var errKilled = errors.New("signal: killed")

func (p *fakeProc) Pid() int { return p.pid }

func (p *fakeProc) Signal(sig syscall.Signal) error {
	select {
	case <-p.exited:
		return os.ErrProcessDone
	default:
	}
	p.mu.Lock()
	p.sigs = append(p.sigs, sig)
	p.mu.Unlock()
	if sig == syscall.SIGKILL {
		p.exit(errKilled)
	}
	return nil
}

func (p *fakeProc) signals() []syscall.Signal {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]syscall.Signal(nil), p.sigs...)
}

func (p *fakeProc) Wait() error {
	<-p.exited
	return p.err
}

// exit ends the process: its channel and stderr close, Wait returns err.
func (p *fakeProc) exit(err error) {
	p.once.Do(func() {
		p.err = err
		_ = p.conn.Close()
		_ = p.logW.Close()
		close(p.exited)
	})
}

func (p *fakeProc) send(t *testing.T, msg ipc.Message) {
	t.Helper()
	if err := p.conn.Send(msg); err != nil {
		t.Fatalf("worker %d: send %v: %v", p.pid, msg.Type, err)
	}
}

// recv returns the next message the master sent this worker.
func (p *fakeProc) recv(t *testing.T) (ipc.Message, []*os.File) {
	t.Helper()
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	msg, files, err := p.conn.Recv()
	if err != nil {
		t.Fatalf("worker %d: recv: %v", p.pid, err)
	}
	return msg, files
}

func (p *fakeProc) expect(t *testing.T, typ ipc.Type) ipc.Message {
	t.Helper()
	msg, files := p.recv(t)
	for _, f := range files {
		_ = f.Close()
	}
	if msg.Type != typ {
		t.Fatalf("worker %d: got %v, want %v", p.pid, msg.Type, typ)
	}
	return msg
}

// fakeSpawner starts fakeProcs; fail, when set, makes spawn fail.
type fakeSpawner struct {
	mu    sync.Mutex
	procs []*fakeProc
	fail  error
}

func (s *fakeSpawner) spawn(spec spawnSpec) (spawned, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return spawned{}, s.fail
	}
	a, b, err := ipc.Socketpair()
	if err != nil {
		return spawned{}, err
	}
	master, err := ipc.NewConn(a)
	_ = a.Close()
	if err != nil {
		return spawned{}, err
	}
	peer, err := ipc.NewConn(b)
	_ = b.Close()
	if err != nil {
		return spawned{}, err
	}
	r, w := io.Pipe()
	p := &fakeProc{pid: 1000 + len(s.procs), spec: spec, conn: peer, logW: w, exited: make(chan struct{})}
	s.procs = append(s.procs, p)
	return spawned{proc: p, conn: master, stderr: r}, nil
}

func (s *fakeSpawner) all() []*fakeProc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*fakeProc(nil), s.procs...)
}

// syncBuffer is a log sink safe for the goroutines that log.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness is a Master driven by the test.
type harness struct {
	t    *testing.T
	m    *Master
	clk  *fakeClock
	sp   *fakeSpawner
	logs *syncBuffer
}

func newHarness(t *testing.T, workers int, opts ...func(*Config)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	cfg := Config{
		Workers: workers,
		Command: []string{"unused"},
		Control: "unused",
		Logger:  hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace}),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.setDefaults(); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clk: &fakeClock{now: time.Unix(1_000_000, 0)}, sp: &fakeSpawner{}, logs: logs}
	h.m = newMaster(cfg, h.sp, h.clk)
	t.Cleanup(h.close)
	return h
}

// close ends every fake worker and the goroutines that watched them.
func (h *harness) close() {
	for _, p := range h.sp.all() {
		p.exit(errKilled)
	}
	for w := range h.m.workers { // real ones, started by an exec spawner
		_ = w.proc.Signal(syscall.SIGKILL)
	}
	select {
	case <-h.m.done:
	default:
		h.m.stopAccepting()
		close(h.m.done)
	}
	h.m.wg.Wait()
	h.m.listeners.closeAll()
	if h.t.Failed() {
		h.t.Logf("master log:\n%s", h.logs.String())
	}
}

// pump runs the next event the supervisor receives.
func (h *harness) pump() {
	h.t.Helper()
	select {
	case ev := <-h.m.events:
		ev()
		h.m.notifyServiceManager() // as the loop does after every event
	case <-time.After(5 * time.Second):
		h.t.Fatalf("no event within 5s; log:\n%s", h.logs.String())
	}
}

// until runs events until cond holds.
func (h *harness) until(cond func() bool) {
	h.t.Helper()
	for !cond() {
		h.pump()
	}
}

// idle runs the events already queued (those a timer just sent).
func (h *harness) idle() {
	for {
		select {
		case ev := <-h.m.events:
			ev()
			h.m.notifyServiceManager()
		default:
			return
		}
	}
}

// advance moves the clock and runs what the timers sent.
func (h *harness) advance(d time.Duration) {
	h.clk.advance(d)
	h.idle()
}

// proc returns the i-th worker process started (from 0).
func (h *harness) proc(i int) *fakeProc {
	h.t.Helper()
	procs := h.sp.all()
	if i >= len(procs) {
		h.t.Fatalf("only %d workers were started, want #%d", len(procs), i)
	}
	return procs[i]
}

func (h *harness) started() int { return len(h.sp.all()) }

// worker returns the master's record of p, nil once it has exited.
func (h *harness) worker(p *fakeProc) *worker {
	for w := range h.m.workers {
		if w.pid == p.pid {
			return w
		}
	}
	return nil
}

func (h *harness) state(p *fakeProc) State {
	if w := h.worker(p); w != nil {
		return w.state
	}
	return Exited
}

// ready plays p's start-up until the master counts it as ready.
func (h *harness) ready(p *fakeProc) {
	h.t.Helper()
	p.send(h.t, ipc.Message{Type: ipc.Online, PID: p.pid})
	p.send(h.t, ipc.Message{Type: ipc.Ready})
	h.until(func() bool { return h.state(p) == Ready })
}

// exit ends p and runs events until the master has seen it go.
func (h *harness) exit(p *fakeProc, err error) {
	h.t.Helper()
	p.exit(err)
	h.until(func() bool { return h.worker(p) == nil })
}

// startPool starts the pool and makes every worker ready.
func (h *harness) startPool() {
	h.t.Helper()
	h.m.start()
	for _, p := range h.sp.all() {
		h.ready(p)
	}
}

// serving returns the pids of the ready workers by slot.
func (h *harness) serving() map[int]int {
	out := map[int]int{}
	for w := range h.m.workers {
		if w.state == Ready {
			out[w.slot] = w.pid
		}
	}
	return out
}

func (h *harness) logged(s string) bool { return strings.Contains(h.logs.String(), s) }

// waitLogged waits for n log lines containing s: lines forwarded from a
// worker's stderr arrive on their own goroutine, not as events.
func (h *harness) waitLogged(s string, n int) {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(h.logs.String(), s) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d lines with %q within 5s; log:\n%s", n, s, h.logs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// reload asks for a rolling restart as ctl does and returns its answer channel.
func (h *harness) reload() chan response {
	r := &request{Request: Request{Cmd: "reload"}, reply: make(chan response, 1)}
	h.m.control(r)
	return r.reply
}

func answered(c chan response) (response, bool) {
	select {
	case r := <-c:
		return r, true
	default:
		return response{}, false
	}
}

// stopped plays p answering a Drain as a worker does: it closes its
// listeners and says so (ipc.Stopped).
func (h *harness) stopped(p *fakeProc) {
	h.t.Helper()
	p.expect(h.t, ipc.Drain)
	p.send(h.t, ipc.Message{Type: ipc.Stopped})
	h.until(func() bool { w := h.worker(p); return w == nil || w.stopped })
}
