package master

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// socketPair returns both ends of a stream socketpair; the caller owns them.
func socketPair(t *testing.T) (int, int) {
	t.Helper()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	return pair[0], pair[1]
}

// unixListenerFD returns a duplicate descriptor of a new Unix listener.
func unixListenerFD(t *testing.T) (int, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fd, err := dupListener(ln)
	if err != nil {
		t.Fatal(err)
	}
	return fd, path
}

// TestTakeUpgradeRefusals: a new master refuses an upgrade description it
// cannot use, naming what is wrong.
func TestTakeUpgradeRefusals(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  func(t *testing.T) string
		want string
	}{
		{"not JSON", func(*testing.T) string { return "{" }, EnvUpgrade + ": unexpected end of JSON input"},
		{"a closed descriptor", func(t *testing.T) string {
			ctl, _ := unixListenerFD(t)
			t.Cleanup(func() { _ = unix.Close(ctl) })
			b, _ := json.Marshal(upgradeEnv{Channel: 1 << 20, Control: ctl})
			return string(b)
		}, "descriptor 1048576: bad file descriptor"},
		{"a control socket that is a pipe", func(t *testing.T) string {
			ours, theirs := socketPair(t)
			t.Cleanup(func() { _ = unix.Close(ours) })
			var p [2]int
			if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = unix.Close(p[1]) })
			b, _ := json.Marshal(upgradeEnv{Channel: theirs, Control: p[0]})
			return string(b)
		}, "control socket from the old master"},
		{"a control socket over TCP", func(t *testing.T) string {
			ours, theirs := socketPair(t)
			t.Cleanup(func() { _ = unix.Close(ours) })
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			fd, err := dupListener(ln)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(upgradeEnv{Channel: theirs, Control: fd})
			return string(b)
		}, "control socket from the old master is not a Unix socket"},
		{"a closed admin descriptor", func(t *testing.T) string {
			ours, theirs := socketPair(t)
			t.Cleanup(func() { _ = unix.Close(ours) })
			ctl, path := unixListenerFD(t)
			b, _ := json.Marshal(upgradeEnv{Channel: theirs, Control: ctl, ControlPath: path, Admin: 1 << 20})
			return string(b)
		}, "admin descriptor 1048576"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 1)
			t.Cleanup(func() {
				if h.m.handover != nil {
					_ = h.m.handover.ch.Close()
				}
				if h.m.ctl != nil {
					_ = h.m.ctl.Close()
				}
			})
			h.m.ctl = nil
			t.Setenv(EnvUpgrade, tc.env(t))
			keys, err := h.m.takeUpgrade()
			if err == nil || !strings.Contains(err.Error(), tc.want) || keys != nil {
				t.Errorf("takeUpgrade: %v %v, want an error with %q", keys, err, tc.want)
			}
		})
	}
	h := newHarness(t, 1)
	if keys, err := h.m.takeUpgrade(); keys != nil || err != nil || h.m.handover != nil {
		t.Errorf("takeUpgrade with no %s: %v %v", EnvUpgrade, keys, err)
	}
}

// startingAsUpgrade makes h's master a new master of an upgrade whose
// pool serves, and returns the old master's end of the channel.
func startingAsUpgrade(t *testing.T, h *harness) *os.File {
	t.Helper()
	withControl(t, h)
	old, ours := socketPair(t)
	_ = unix.SetNonblock(ours, true)
	h.m.handover = newHandover(os.NewFile(uintptr(ours), "upgrade"), h.m.ctlPath)
	h.startPool()
	return os.NewFile(uintptr(old), "old")
}

// TestOldMasterGoneBeforeCommit: a new master whose old master dies
// before the commit takes over by itself, whether it was gone before the
// new one said ready or after.
func TestOldMasterGoneBeforeCommit(t *testing.T) {
	t.Run("after ready", func(t *testing.T) {
		h := newHarness(t, 1)
		old := startingAsUpgrade(t, h)
		h.m.handoverTick()
		sc := bufio.NewScanner(old)
		if !sc.Scan() || sc.Text() != lineReady {
			t.Fatalf("old master heard %q", sc.Text())
		}
		_ = old.Close()
		h.until(func() bool { return h.m.handover == nil })
		if !h.logged("the old master went away before it committed the upgrade; taking over") {
			t.Error("no word of the takeover")
		}
		c, err := net.Dial("unix", h.m.ctlPath)
		if err != nil {
			t.Fatalf("control socket after the takeover: %v", err)
		}
		_ = c.Close()
	})
	t.Run("before ready", func(t *testing.T) {
		h := newHarness(t, 1)
		old := startingAsUpgrade(t, h)
		_ = old.Close()
		h.m.handoverTick()
		if h.m.handover != nil || !h.logged("the old master went away; taking over") {
			t.Errorf("the new master did not take over at once")
		}
	})
}

// TestGatedAdminListener: the new master's admin socket accepts only from
// the commit; closed before it, Accept returns at once.
func TestGatedAdminListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	g := &gatedListener{Listener: ln, open: open, closed: make(chan struct{})}
	accepted := make(chan error, 1)
	go func() {
		c, err := g.Accept()
		if err == nil {
			_ = c.Close()
		}
		accepted <- err
	}()
	c, err := net.Dial("tcp", ln.Addr().String()) // queued by the kernel
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case err := <-accepted:
		t.Fatalf("accepted before the commit: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(open)
	select {
	case err := <-accepted:
		if err != nil {
			t.Fatalf("accept after the commit: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no accept after the commit")
	}
	if _, err := g.SyscallConn(); err != nil {
		t.Errorf("SyscallConn: %v", err)
	}
	_ = g.Close()
	_ = g.Close() // twice is fine

	g = &gatedListener{Listener: fakeListener{ln}, open: make(chan struct{}), closed: make(chan struct{})}
	if _, err := g.SyscallConn(); err == nil {
		t.Error("SyscallConn of a listener with no descriptor")
	}
	g.once.Do(func() { close(g.closed) })
	if _, err := g.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("accept on a gate closed before the commit: %v", err)
	}
}
