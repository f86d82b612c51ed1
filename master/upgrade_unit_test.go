package master

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// passFiles plays exec for an upgrade within this process: each file the
// old master would pass is duplicated, env is rewritten with the new
// descriptors' numbers, and the old master's copies are closed (as
// upgradeSteps does once the child runs).
func passFiles(t *testing.T, files []*os.File, env upgradeEnv) upgradeEnv {
	t.Helper()
	fds := make([]int, len(files))
	for i, f := range files {
		fd, err := rawfd.DupFile(f)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
	}
	closeFiles(files)
	at := func(n int) int { return fds[n-4] } // files[i] was to be fd 4+i
	env.Control = at(env.Control)
	for i := range env.Listeners {
		l := &env.Listeners[i]
		l.FD = at(l.FD)
		for j := range l.Members {
			l.Members[j].FD = at(l.Members[j].FD)
		}
	}
	if env.Admin > 0 {
		env.Admin = at(env.Admin)
	}
	return env
}

// channelTo starts a reader of the old master's end of the readiness
// channel, as startNewMaster does, and returns the new master's end's
// descriptor.
func channelTo(t *testing.T, nm *nextMaster) int {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.SetNonblock(pair[0], true)
	nm.ch = os.NewFile(uintptr(pair[0]), "upgrade")
	go func() {
		defer close(nm.lines)
		sc := bufio.NewScanner(nm.ch)
		for sc.Scan() {
			nm.lines <- sc.Text()
		}
	}()
	return pair[1]
}

// notifySocket listens as a service manager does on $NOTIFY_SOCKET.
func notifySocket(t *testing.T) *net.UnixConn {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return c
}

// notified reads the datagrams sent to c until one equals want.
func notified(t *testing.T, c *net.UnixConn, want string) []string {
	t.Helper()
	var got []string
	buf := make([]byte, 4096)
	for !slices.Contains(got, want) {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q, got %q: %v", want, got, err)
		}
		got = append(got, string(buf[:n]))
	}
	return got
}

// TestUpgradeHandshakeInProcess runs both masters of an upgrade in this
// process: the old one passes its control socket, a TCP and a Unix
// listener and its admin socket; the new one takes them, starts as many
// workers as the old one had, of the next generation, says ready only
// when they all serve, and on the commit takes over the PID file, the
// control socket, the admin socket and the service manager. The old one
// then tells the service manager the new MAINPID, leaves the socket files
// in place and drains its workers.
func TestUpgradeHandshakeInProcess(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "clusterd.pid")
	sockPath := filepath.Join(dir, "app.sock")
	keys := []string{"127.0.0.1:0", "unix:" + sockPath}

	// The old master.
	a := newHarness(t, 1, func(c *Config) { c.PIDFile = pidFile })
	withControl(t, a)
	for _, key := range keys {
		if _, err := a.m.listeners.get(key); err != nil {
			t.Fatal(err)
		}
	}
	a.m.listenKeys = keys
	adm, err := a.m.listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a.m.admin = adm
	t.Cleanup(adm.close)
	adminAddr := adm.ln.Addr().String()
	a.startPool()
	if err := a.m.scale(2); err != nil {
		t.Fatal(err)
	}
	a.ready(a.proc(1))
	a.m.generation = 3
	sent := &sentStates{}
	a.m.sd = &notifier{send: sent.send, log: a.m.log, started: true}

	files, env, err := a.m.upgradeFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 4 || env.Generation != 4 || env.Workers != 2 || env.ControlPath != a.m.ctlPath ||
		!slices.Equal(env.Keys, keys) || env.Admin != 7 || len(env.Listeners) != 2 ||
		env.Listeners[0].FD != 5 || env.Listeners[1].FD != 6 || env.Listeners[0].SockFile || !env.Listeners[1].SockFile {
		t.Fatalf("upgrade files: %d, env %+v", len(files), env)
	}
	nm := &nextMaster{cmd: fakeCmd(4242), lines: make(chan string, 4), exited: make(chan error, 1)}
	env = passFiles(t, files, env)
	env.Channel = channelTo(t, nm)

	// The new master.
	sd := notifySocket(t)
	t.Setenv("WATCHDOG_USEC", "2000000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	b := newHarness(t, 1, func(c *Config) { c.PIDFile = pidFile; c.AdminListen = "127.0.0.1:1" })
	b.m.cfg.Workers = 7 // as its flags say: the old master's pool size wins
	b.m.ctl = nil
	t.Cleanup(func() {
		if b.m.ctl != nil {
			_ = b.m.ctl.Close()
		}
	})
	js, _ := json.Marshal(env)
	t.Setenv(EnvUpgrade, string(js))
	got, err := b.m.takeInherited()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, keys) || b.m.cfg.Workers != 2 || b.m.generation != 4 || b.m.handover == nil || b.m.ctlPath != a.m.ctlPath {
		t.Fatalf("took keys %v, %d workers, generation %d, control %q", got, b.m.cfg.Workers, b.m.generation, b.m.ctlPath)
	}
	if _, set := os.LookupEnv(EnvUpgrade); set {
		t.Errorf("%s is still set: workers would see it", EnvUpgrade)
	}
	if err := b.m.openListeners(got); err != nil {
		t.Fatal(err)
	}
	for i, l := range b.m.listeners.order {
		old := a.m.listeners.order[i]
		if l.key != old.key || l.addr != old.addr || l.form != old.form || (l.sock != nil) != (old.sock != nil) {
			t.Errorf("listener %d: %+v, the old master's %+v", i, l, old)
		}
	}
	badm, err := b.m.startAdmin()
	if err != nil {
		t.Fatal(err)
	}
	b.m.admin = badm
	t.Cleanup(badm.close)
	if got := badm.ln.Addr().String(); got != adminAddr {
		t.Errorf("new master's admin socket %s, want the old one's %s", got, adminAddr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	u := &upgrade{started: a.m.now(), abort: make(chan string, 1)}
	reply := make(chan response, 1)
	u.waiters = append(u.waiters, reply)
	a.m.upgrade = u
	awaited := make(chan error, 1)
	go func() { awaited <- a.m.awaitNewMaster(ctx, u, nm) }()

	b.m.start()
	if n := b.started(); n != 2 || b.proc(0).spec.generation != 4 {
		t.Fatalf("new master started %d workers of generation %d", n, b.proc(0).spec.generation)
	}
	b.ready(b.proc(0))
	b.m.handoverTick()
	if b.m.handover.readySent {
		t.Fatal("ready sent with 1 of 2 workers serving")
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("PID file before the commit: %v", err)
	}
	b.ready(b.proc(1))
	b.m.handoverTick()
	b.until(func() bool { return b.m.handover == nil }) // ready, commit
	select {
	case err := <-awaited:
		if err != nil || !nm.committed {
			t.Fatalf("old master: %v (committed %v)", err, nm.committed)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the old master did not hear done")
	}
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != pidString() {
		t.Errorf("PID file after the commit: %q %v", b, err)
	}
	if b.m.sd == nil || !b.m.sd.started || b.m.sd.interval != time.Second {
		t.Fatalf("new master's notifier: %+v", b.m.sd)
	}
	b.m.notifyServiceManager()
	// It pings the watchdog at once; READY=1 with its MAINPID is the old
	// master's to send.
	if msgs := notified(t, sd, "WATCHDOG=1"); slices.Contains(msgs, "READY=1") {
		t.Errorf("new master told the service manager %q", msgs)
	}

	a.m.upgradeFinished(u, 4242, nil)
	r, ok := answered(reply)
	if !ok || !r.OK || !strings.Contains(r.Message, "new master pid 4242 serves") {
		t.Errorf("upgrade answer: %+v", r)
	}
	if a.m.upgrade != nil || !a.m.handedOver || !a.m.stopping || a.m.sd != nil {
		t.Errorf("old master after the hand-over: upgrade %v, handed over %v, stopping %v", a.m.upgrade, a.m.handedOver, a.m.stopping)
	}
	if !slices.Contains(sent.states, "MAINPID=4242") {
		t.Errorf("old master told the service manager %q, want MAINPID=4242", sent.states)
	}
	for i := 0; i < 2; i++ {
		if st := a.state(a.proc(i)); st != Draining {
			t.Errorf("old worker %d: %v, want draining", i, st)
		}
	}
	for _, path := range []string{sockPath, a.m.ctlPath} {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("socket file after the hand-over: %v", err)
		}
	}
	c, err := net.Dial("unix", a.m.ctlPath)
	if err != nil {
		t.Fatalf("control socket after the hand-over: %v", err)
	}
	_ = c.Close()
	// The admin socket is the new master's: its generation, its readiness.
	if code, body := get(t, "http://"+adminAddr+"/metrics"); code != 200 || !strings.Contains(body, "clusterd_generation 4\n") {
		t.Errorf("admin after the hand-over: %d, generation 4 in it: %v", code, strings.Contains(body, "clusterd_generation 4\n"))
	}
	if code, _ := get(t, "http://"+adminAddr+"/readyz"); code != 200 {
		t.Errorf("/readyz after the hand-over: %d", code)
	}
	// The new master can hand all of it on again.
	files, env, err = b.m.upgradeFiles()
	if err != nil || len(files) != 4 || env.Generation != 5 {
		t.Errorf("the new master's own upgrade files: %d, %+v, %v", len(files), env, err)
	}
	closeFiles(files)
}

func fakeCmd(pid int) *exec.Cmd { return &exec.Cmd{Process: &os.Process{Pid: pid}} }

// TestUpgradeReuseportInProcess: under reuseport scheduling every slot's
// socket passes to the new master in the group's order, and its workers
// get them; the old master closes only its descriptors, so a connection
// queued on a slot's socket during the upgrade is still there for the new
// master's worker.
func TestUpgradeReuseportInProcess(t *testing.T) {
	a, ga := rpHarness(t, 2)
	withControl(t, a)
	for _, p := range a.sp.all() {
		a.rpQuery(p)
		a.ready(p)
	}
	s1 := slotSocket(t, ga, 1)
	inodes := map[int]uint64{1: inode(t, s1.file), 2: inode(t, slotSocket(t, ga, 2).file)}
	if err := ga.steer([]int{slices.Index(ga.members, s1)}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", ga.addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	files, env, err := a.m.upgradeFiles()
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Listeners) != 1 || !env.Listeners[0].Reuseport || len(env.Listeners[0].Members) != 2 || env.Listeners[0].Addr != ga.addr {
		t.Fatalf("reuseport listener passed as %+v", env.Listeners)
	}
	nm := &nextMaster{cmd: fakeCmd(4242), lines: make(chan string, 4), exited: make(chan error, 1)}
	env = passFiles(t, files, env)
	env.Channel = channelTo(t, nm)

	b := newHarness(t, 1, func(c *Config) { c.Sched = SchedReuseport })
	t.Cleanup(func() {
		b.m.rpCloseAll()
		if b.m.ctl != nil {
			_ = b.m.ctl.Close()
		}
	})
	b.m.ctl = nil
	js, _ := json.Marshal(env)
	t.Setenv(EnvUpgrade, string(js))
	keys, err := b.m.takeInherited()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.m.openListeners(keys); err != nil {
		t.Fatal(err)
	}
	gb := b.m.rp.groups[rpKey]
	if gb == nil || len(gb.members) != 2 || gb.addr != ga.addr {
		t.Fatalf("new master's group: %+v", gb)
	}
	for i, s := range gb.members {
		if s.slot != ga.members[i].slot || inode(t, s.file) != inodes[s.slot] {
			t.Errorf("member %d: slot %d, not the old master's socket in that place", i, s.slot)
		}
	}
	b.m.start()
	if len(gb.members) != 2 {
		t.Fatalf("the new master added sockets: %d", len(gb.members))
	}
	for i, p := range b.sp.all() {
		if got := b.rpQuery(p); got != inodes[i+1] {
			t.Errorf("new worker %d did not get its slot's socket", i+1)
		}
		b.ready(p)
	}
	b.m.handoverTick()
	if line := <-nm.lines; line != lineReady {
		t.Fatalf("new master said %q", line)
	}
	if _, err := nm.ch.WriteString(lineCommit + "\n"); err != nil {
		t.Fatal(err)
	}
	b.until(func() bool { return b.m.handover == nil })
	if line := <-nm.lines; line != lineDone {
		t.Fatalf("new master said %q", line)
	}

	u := &upgrade{started: a.m.now(), abort: make(chan string, 1)}
	a.m.upgrade = u
	a.m.upgradeFinished(u, 4242, nil)
	if len(a.m.rp.order) != 0 || len(a.m.rp.groups) != 0 {
		t.Errorf("the old master still holds %d reuseport groups", len(a.m.rp.order))
	}
	if q, err := slotSocket(t, gb, 1).queued(); err != nil || q != 1 {
		t.Errorf("slot 1's queue after the hand-over: %d %v, want the connection", q, err)
	}
	if f, err := slotSocket(t, gb, 1).acceptOne(); err != nil || f == nil {
		t.Errorf("the new master cannot take the queued connection: %v", err)
	} else {
		_ = f.Close()
	}
	_ = nm.ch.Close()
}
