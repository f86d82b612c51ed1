package master

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// autoSpawner starts fake workers that play themselves: online and ready
// at once, serving every hand-off, exiting when told to drain.
type autoSpawner struct {
	fakeSpawner
	first chan struct{} // closed when the first worker starts
	once  sync.Once
}

func (a *autoSpawner) spawn(spec spawnSpec) (spawned, error) {
	sp, err := a.fakeSpawner.spawn(spec)
	if err != nil {
		return sp, err
	}
	a.once.Do(func() { close(a.first) })
	p := sp.proc.(*fakeProc)
	go func() {
		_ = p.conn.Send(ipc.Message{Type: ipc.Online})
		_ = p.conn.Send(ipc.Message{Type: ipc.Ready})
		for {
			msg, files, err := p.conn.Recv()
			for _, f := range files {
				_ = f.Close()
			}
			switch {
			case err != nil:
				return
			case msg.Type == ipc.Drain:
				p.exit(nil)
				return
			case msg.Type == ipc.Handoff:
				_ = p.conn.Send(ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq})
			}
		}
	}()
	return sp, nil
}

// ctlUntil sends req until check accepts the answer.
func ctlUntil(t *testing.T, path string, req Request, check func(Response) bool) Response {
	t.Helper()
	var resp Response
	var err error
	for i := 0; i < 1000; i++ {
		resp, err = Control(path, req, 5*time.Second)
		if err == nil && check(resp) {
			return resp
		}
	}
	t.Fatalf("control %+v: %+v, %v", req, resp, err)
	return resp
}

func readyCount(r Response) int {
	n := 0
	if r.Status != nil {
		for _, w := range r.Status.Workers {
			if w.State == "ready" {
				n++
			}
		}
	}
	return n
}

// Run end to end on fake workers: the control socket in the default
// directory, status, scale, reload, a SIGHUP, bad requests and a stop.
func TestRunAndControl(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	h := newHarness(t, 2, func(c *Config) {
		c.Control = ""
		c.Listen = []string{"127.0.0.1:0"}
		c.Sched = SchedRR
	})
	sp := &autoSpawner{first: make(chan struct{})}
	h.m.spawner = sp
	h.sp = &sp.fakeSpawner
	h.m.clock = realClock{}
	errc := make(chan error, 1)
	go func() { errc <- h.m.Run() }()
	select { // Run opens the control socket before it starts workers
	case <-sp.first:
	case err := <-errc:
		t.Fatalf("Run: %v", err)
	}
	path, err := FindControl()
	if err != nil {
		t.Fatal(err)
	}
	st := ctlUntil(t, path, Request{Cmd: "status"}, func(r Response) bool { return readyCount(r) == 2 }).Status
	if st.Master.Workers != 2 || st.Master.Sched != SchedRR || len(st.Master.Listeners) != 1 || st.Master.PID != os.Getpid() {
		t.Errorf("status %+v", st.Master)
	}
	// A connection through the master's acceptor reaches a worker.
	c, err := net.Dial("tcp", st.Master.Listeners[0].Addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	if r := ctlUntil(t, path, Request{Cmd: "scale", N: 3}, func(Response) bool { return true }); !r.OK {
		t.Errorf("scale: %+v", r)
	}
	ctlUntil(t, path, Request{Cmd: "status"}, func(r Response) bool { return readyCount(r) == 3 })
	if r, err := Control(path, Request{Cmd: "reload"}, 5*time.Second); err != nil || !r.OK || !strings.Contains(r.Message, "generation 1") {
		t.Errorf("reload: %+v %v", r, err)
	}
	h.m.sigs <- syscall.SIGHUP
	ctlUntil(t, path, Request{Cmd: "status"}, func(r Response) bool { return r.Status.Master.Generation == 2 && !r.Status.Master.Rolling })
	for _, bad := range []Request{{Cmd: "bogus"}, {Cmd: "scale", N: 0}, {Cmd: "scale", N: MaxWorkers + 1}} {
		if r, err := Control(path, bad, 5*time.Second); err != nil || r.OK || r.Error == "" {
			t.Errorf("%+v: %+v %v", bad, r, err)
		}
	}
	raw, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = raw.Write([]byte("not json\n"))
	buf := make([]byte, 256)
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := raw.Read(buf)
	_ = raw.Close()
	if !strings.Contains(string(buf[:n]), "bad request") {
		t.Errorf("bad request answered %q", buf[:n])
	}
	if r, err := Control(path, Request{Cmd: "stop"}, 5*time.Second); err != nil || !r.OK {
		t.Errorf("stop: %+v %v", r, err)
	}
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after stop")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("control socket left behind: %v", err)
	}
	if _, err := Control(path, Request{Cmd: "status"}, time.Second); !errors.Is(err, ErrNoMaster) {
		t.Errorf("control after stop: %v", err)
	}
	if _, err := FindControl(); !errors.Is(err, ErrNoMaster) {
		t.Errorf("FindControl after stop: %v", err)
	}
}

// Run fails fast, with the control socket removed, when a port is busy.
func TestRunBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	h := newHarness(t, 1, func(c *Config) { c.Control = path; c.Listen = []string{busy.Addr().String()} })
	if err := h.m.Run(); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("Run: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || h.started() != 0 {
		t.Errorf("control socket %v, %d started", err, h.started())
	}
}

// FindControl removes stale sockets and refuses to guess between masters.
func TestFindControl(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	dir := ControlDir()
	if _, err := FindControl(); !errors.Is(err, ErrNoMaster) {
		t.Fatalf("no dir: %v", err)
	}
	if err := ensureControlDir(dir); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "master-1.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
	var live []string
	for _, name := range []string{"master-2.sock", "master-3.sock"} {
		l, err := net.Listen("unix", filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		live = append(live, filepath.Join(dir, name))
	}
	if _, err := FindControl(); err == nil || !strings.Contains(err.Error(), "2 masters are running") {
		t.Errorf("two masters: %v", err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale socket kept: %v", err)
	}
	_ = os.Remove(live[1])
	if p, err := FindControl(); err != nil || p != live[0] {
		t.Errorf("one master: %q %v", p, err)
	}
}

// The exec spawner starts a real worker process: the test binary playing
// one. Its log lines are forwarded; a drain ends it; a kill ends its group.
func TestExecWorker(t *testing.T) {
	t.Setenv(envHelper, "1")
	h := newHarness(t, 2)
	h.m.spawner = execSpawner{command: []string{os.Args[0], "-test.run=^$"}}
	h.m.start()
	h.until(func() bool { return len(h.serving()) == 2 })
	h.waitLogged("helper says hello", 2)
	h.waitLogged("a plain line", 2)
	if !h.logged(`gen=0`) || !h.logged("[WARN]  worker: helper says hello") {
		t.Errorf("forwarded log:\n%s", h.logs)
	}
	var victim *worker
	for w := range h.m.workers {
		if w.slot == 2 {
			victim = w
		}
	}
	h.m.kill(victim, "test")
	h.until(func() bool { _, ok := h.m.workers[victim]; return !ok })
	if victim.state != Failed || !h.logged(`status="signal: killed"`) {
		t.Errorf("killed worker: %v\n%s", victim.state, h.logs)
	}
	if err := victim.proc.Signal(syscall.SIGTERM); !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("signal after exit: %v", err)
	}
	h.until(func() bool { return len(h.serving()) == 2 }) // replaced
	h.m.signal(syscall.SIGTERM)
	h.until(h.m.finished)
	if n := strings.Count(h.logs.String(), `worker exited: id=`); n != 2 {
		t.Errorf("%d drained workers exited cleanly; log:\n%s", n, h.logs)
	}
}

func TestWorkerEnvAndStateNames(t *testing.T) {
	env := workerEnv([]string{"A=1", ipc.EnvWorkerID + "=3", ipc.EnvGeneration + "=2", ipc.EnvFD + "=3", "B=2"})
	if strings.Join(env, " ") != "A=1 B=2" {
		t.Errorf("workerEnv: %v", env)
	}
	if State(99).String() != "unknown" || Draining.String() != "draining" {
		t.Error("state names")
	}
	for _, c := range []Config{{Sched: "random"}, {Workers: MaxWorkers + 1}} {
		if _, err := New(c); err == nil {
			t.Errorf("New(%+v) accepted", c)
		}
	}
	m, err := New(Config{})
	if err != nil || m.cfg.Workers < 1 || m.cfg.Command[0] == "" || m.cfg.GracefulTimeout != 30*time.Second {
		t.Errorf("defaults: %+v %v", m.cfg, err)
	}
}

// An fd:N listener is taken over as inherited: its address is found from
// the socket itself; a systemd:NAME listener with nothing passed is refused.
func TestInheritedListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	fd, err := syscall.Dup(int(f.Fd())) // the master's table owns this one
	_ = f.Close()
	if err != nil {
		t.Fatal(err)
	}
	key := "fd:" + strconv.Itoa(fd)
	h := newHarness(t, 1, func(c *Config) { c.Listen = []string{key} })
	keys, err := h.m.takeInherited()
	if err != nil || len(keys) != 1 || keys[0] != key {
		t.Fatalf("takeInherited: %v %v", keys, err)
	}
	if l := h.m.listeners.byKey[key]; l == nil || l.addr != ln.Addr().String() || l.form != FormFD {
		t.Fatalf("inherited listener: %+v", l)
	}
	if Activated() {
		t.Error("Activated without LISTEN_FDS")
	}
	h2 := newHarness(t, 1, func(c *Config) { c.Listen = []string{"systemd:web"} })
	if _, err := h2.m.takeInherited(); err == nil || !strings.Contains(err.Error(), "LISTEN_FDS is not set") {
		t.Errorf("systemd:web without activation: %v", err)
	}
}
