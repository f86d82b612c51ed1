package master

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// upgradeCmd asks for an upgrade as ctl does and returns its answer channel.
func (h *harness) upgradeCmd() chan response {
	r := &request{Request: Request{Cmd: CmdUpgrade}, reply: make(chan response, 1)}
	h.m.control(r)
	return r.reply
}

// withControl gives the master a real control socket, closed before the
// harness ends.
func withControl(t *testing.T, h *harness) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "ctl.sock"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	h.m.ctl, h.m.ctlPath = ln, ln.Addr().String()
	t.Cleanup(func() { _ = ln.Close() })
}

// TestUpgradeRefused: an upgrade is refused, and changes nothing, while
// the master cannot hand over; a reload is refused during an upgrade.
func TestUpgradeRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(h *harness)
		want  string
	}{
		{"during a roll", func(h *harness) { h.reload() }, errRolling.Error()},
		{"during an upgrade", func(h *harness) { h.m.upgrade = &upgrade{} }, errUpgrading.Error()},
		{"while stopping", func(h *harness) { h.m.stopping = true }, "the master is stopping"},
		{"as PID 1", func(h *harness) { h.m.pid1 = true }, "the master is PID 1"},
		{"while starting as an upgrade", func(h *harness) { h.m.handover = &handover{} }, "itself starting as an upgrade"},
		{"with no control socket", func(h *harness) { h.m.ctl = nil }, "no control socket"},
		{"during a reuseport scale-down", func(h *harness) { h.m.rp.leaving = []*leavingSlot{{id: 2}} }, "a scale-down is still moving connections"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1)
			withControl(t, h)
			h.startPool()
			tc.setup(h)
			before := h.m.upgrade
			resp, ok := answered(h.upgradeCmd())
			if !ok || resp.OK || !strings.Contains(resp.Error, tc.want) {
				t.Errorf("upgrade %s: %+v, want refused with %q", tc.name, resp, tc.want)
			}
			if h.m.upgrade != before {
				t.Errorf("a refused upgrade changed the state: %+v", h.m.upgrade)
			}
		})
	}
	h := newHarness(t, 1)
	h.startPool()
	h.m.upgrade = &upgrade{pid: 4242}
	if resp, ok := answered(h.reload()); !ok || resp.OK || resp.Error != errUpgrading.Error() {
		t.Errorf("reload during an upgrade: %+v", resp)
	}
	if !h.m.isWorker(4242) {
		t.Error("the new master of an upgrade is not spared by the PID 1 reaper")
	}
}

// TestHandover plays the old master against a new one: "ready" only once
// every slot serves, and on "commit" the PID file names the new master,
// which answers "done" and serves the control socket.
func TestHandover(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "clusterd.pid")
	h := newHarness(t, 2, func(c *Config) { c.PIDFile = pidFile })
	withControl(t, h)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_ = unix.SetNonblock(pair[1], true)
	old := os.NewFile(uintptr(pair[0]), "old")
	defer old.Close()
	h.m.handover = newHandover(os.NewFile(uintptr(pair[1]), "new"), h.m.ctlPath)
	lines := bufio.NewScanner(old)

	h.m.start()
	h.ready(h.proc(0))
	h.m.handoverTick()
	if h.m.handover.readySent {
		t.Fatal("ready sent with 1 of 2 workers serving")
	}
	h.ready(h.proc(1))
	h.m.handoverTick()
	if !lines.Scan() || lines.Text() != lineReady {
		t.Fatalf("new master said %q, want %q", lines.Text(), lineReady)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Fatalf("PID file before the commit: %v", err)
	}
	if _, err := old.WriteString(lineCommit + "\n"); err != nil {
		t.Fatal(err)
	}
	h.until(func() bool { return h.m.handover == nil })
	if !lines.Scan() || lines.Text() != lineDone {
		t.Fatalf("new master said %q, want %q", lines.Text(), lineDone)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil || string(b) != strconv.Itoa(os.Getpid())+"\n" {
		t.Errorf("PID file: %q, %v", b, err)
	}
	c, err := net.Dial("unix", h.m.ctlPath)
	if err != nil {
		t.Fatalf("control socket after the commit: %v", err)
	}
	_ = c.Close()
}

// fakeNext is a new master the test plays: lines it "sends", and what the
// old master writes to it.
func fakeNext(t *testing.T) (nm *nextMaster, theirs *bufio.Scanner) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	other := os.NewFile(uintptr(pair[1]), "theirs")
	t.Cleanup(func() { _ = other.Close() })
	nm = &nextMaster{
		cmd:    &exec.Cmd{Process: &os.Process{Pid: 4242}},
		ch:     os.NewFile(uintptr(pair[0]), "ours"),
		lines:  make(chan string, 4),
		exited: make(chan error, 1),
	}
	return nm, bufio.NewScanner(other)
}

// TestAwaitNewMaster: the old master's side of the handshake commits a
// ready new master and reports every way one can fail.
func TestAwaitNewMaster(t *testing.T) {
	for _, tc := range []struct {
		name  string
		play  func(nm *nextMaster, u *upgrade)
		want  string // "" for success
		short bool   // a tiny ready timeout
	}{
		{"ready, done", func(nm *nextMaster, _ *upgrade) { nm.lines <- lineReady; nm.lines <- lineDone }, "", false},
		{"failed", func(nm *nextMaster, _ *upgrade) { nm.lines <- lineFailed + " listen :80: permission denied" },
			"the new master (pid 4242) could not start: listen :80: permission denied", false},
		{"exited", func(nm *nextMaster, _ *upgrade) { nm.exited <- errors.New("exit status 2"); close(nm.lines) },
			"the new master (pid 4242) exited during start-up (exit status 2)", false},
		{"silent", func(*nextMaster, *upgrade) {}, "the new master (pid 4242) was not ready within 10ms; killed it", true},
		{"aborted", func(_ *nextMaster, u *upgrade) { u.abort <- "upgrade aborted: the master is stopping" },
			"upgrade aborted: the master is stopping", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1)
			timeout := 10 * time.Second
			if tc.short {
				timeout = 10 * time.Millisecond
			}
			h.m.cfg.ReadyTimeout = timeout
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			nm, theirs := fakeNext(t)
			u := &upgrade{abort: make(chan string, 1)}
			tc.play(nm, u)
			err := h.m.awaitNewMaster(ctx, u, nm)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if tc.want == "" && (!theirs.Scan() || theirs.Text() != lineCommit) {
				t.Errorf("the new master was told %q, want %q", theirs.Text(), lineCommit)
			}
			if tc.want == "" != nm.committed {
				t.Errorf("committed = %v", nm.committed)
			}
		})
	}
}

// TestHandoverFailed: a new master that cannot start tells the old one
// why, on one line.
func TestHandoverFailed(t *testing.T) {
	h := newHarness(t, 1)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "new"), os.NewFile(uintptr(pair[1]), "old")
	defer ours.Close()
	defer theirs.Close()
	h.m.handover = newHandover(ours, "")
	err = errors.New("listen unix:/run/app.sock:\nbind: address in use")
	h.m.handoverFailed(&err)
	sc := bufio.NewScanner(theirs)
	if !sc.Scan() || sc.Text() != lineFailed+" listen unix:/run/app.sock: bind: address in use" {
		t.Errorf("old master heard %q", sc.Text())
	}
}
