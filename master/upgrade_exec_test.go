package master

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newMasterScript plays the new binary of an upgrade, by scenario ($1);
// it writes what it inherited to the directory $2.
const newMasterScript = `
trap 'exit 4' QUIT
if [ "$CLUSTERD_CHECK" = 1 ]; then
	case "$1" in
	check-fails) echo "checking"; echo "listen: bad address" >&2; exit 2 ;;
	no-check) exit 0 ;;
	check-hangs) exec sleep 30 ;;
	esac
	echo "configuration ok"
	exit 0
fi
printf '%s' "$CLUSTERD_UPGRADE" >"$2/env.json"
env >"$2/env.txt"
case "$1" in
exits) exit 3 ;;
fails) echo "failed listen :80: permission denied" >&3; read x <&3; exit 1 ;;
silent) read x <&3; exit 0 ;;
esac
for fd in 3 4 5; do
	[ -S /proc/$$/fd/$fd ] || { echo "failed descriptor $fd is not a socket" >&3; read x <&3; exit 1; }
done
echo ready >&3
read line <&3
[ "$line" = commit ] && echo done >&3
read x <&3 # serve until the old master has heard it
exit 0
`

// execUpgrade runs an upgrade to the script playing scenario and returns
// the answer, the harness and the script's directory.
func execUpgrade(t *testing.T, scenario string, readyTimeout time.Duration, during func(h *harness)) (response, *harness, string) {
	t.Helper()
	dir := t.TempDir()
	script := filepath.Join(dir, "new-master.sh")
	if err := os.WriteFile(script, []byte(newMasterScript), 0o600); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, 1, func(c *Config) {
		c.Command = []string{"/bin/sh", script, scenario, dir}
		c.ReadyTimeout = readyTimeout
	})
	withControl(t, h)
	if _, err := h.m.listeners.get("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	h.m.listenKeys = []string{"127.0.0.1:0"}
	h.startPool()
	reply := h.upgradeCmd()
	if h.m.upgrade == nil {
		r, _ := answered(reply)
		t.Fatalf("upgrade not started: %+v", r)
	}
	if during != nil {
		during(h)
	}
	h.until(func() bool { return h.m.upgrade == nil })
	r, ok := answered(reply)
	if !ok {
		t.Fatal("the upgrade ended without an answer")
	}
	return r, h, dir
}

// TestUpgradeToBinary runs the new binary for real (a script): a check
// that fails, a binary that does not check, a check that hangs, a new
// master that exits or says it failed: each refuses the
// upgrade with its reason and the old master serves on; one that goes
// through the handshake takes over and the old master drains.
func TestUpgradeToBinary(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("WATCHDOG_PID", "1")
	for _, tc := range []struct {
		scenario string
		timeout  time.Duration
		want     string
	}{
		{"check-fails", time.Minute, "the new binary failed its configuration check (exit status 2): listen: bad address"},
		{"no-check", time.Minute, `the new binary did not check its configuration (no "configuration ok"; does it support upgrades?): it printed nothing`},
		{"check-hangs", 300 * time.Millisecond, "the new binary's configuration check did not finish within the ready timeout; killed it"},
		{"exits", time.Minute, "exited during start-up (exit status 3)"},
		{"fails", time.Minute, "could not start: listen :80: permission denied"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			r, h, _ := execUpgrade(t, tc.scenario, tc.timeout, nil)
			if r.OK || !strings.Contains(r.Error, tc.want) {
				t.Errorf("answer %+v, want an error with %q", r, tc.want)
			}
			if h.m.stopping || h.m.handedOver || len(h.serving()) != 1 || !h.logged("master upgrade failed; serving on") {
				t.Errorf("the old master did not serve on: stopping %v, serving %v", h.m.stopping, h.serving())
			}
			c, err := net.Dial("unix", h.m.ctlPath)
			if err != nil {
				t.Fatalf("control socket after a failed upgrade: %v", err)
			}
			_ = c.Close()
		})
	}

	t.Run("aborted by a stop", func(t *testing.T) {
		r, h, _ := execUpgrade(t, "silent", time.Minute, func(h *harness) { h.m.stopGracefully() })
		if r.OK || r.Error != "upgrade aborted: the master is stopping" {
			t.Errorf("answer %+v", r)
		}
		if h.m.handedOver {
			t.Error("an aborted upgrade handed over")
		}
	})

	t.Run("missing binary", func(t *testing.T) {
		h := newHarness(t, 1, func(c *Config) { c.Command = []string{filepath.Join(t.TempDir(), "gone")} })
		withControl(t, h)
		h.startPool()
		reply := h.upgradeCmd()
		h.until(func() bool { return h.m.upgrade == nil })
		if r, _ := answered(reply); r.OK || !strings.Contains(r.Error, "failed its configuration check") ||
			!strings.Contains(r.Error, "no such file or directory") {
			t.Errorf("answer %+v", r)
		}
	})

	t.Run("done", func(t *testing.T) {
		r, h, dir := execUpgrade(t, "done", time.Minute, nil)
		var pid int
		if _, err := fmt.Sscanf(r.Message, "upgraded: new master pid %d serves", &pid); !r.OK || err != nil {
			t.Fatalf("answer %+v", r)
		}
		// The script ends when the old master's end of the channel closes.
		for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the new master (pid %d) still runs", pid)
			}
		}
		if !h.m.handedOver || !h.m.stopping || h.state(h.proc(0)) != Draining {
			t.Errorf("the old master did not hand over and drain")
		}
		b, err := os.ReadFile(filepath.Join(dir, "env.json"))
		if err != nil {
			t.Fatal(err)
		}
		var env upgradeEnv
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if env.Channel != 3 || env.Control != 4 || env.Generation != 1 || env.Workers != 1 ||
			len(env.Listeners) != 1 || env.Listeners[0].FD != 5 || env.Listeners[0].Key != "127.0.0.1:0" {
			t.Errorf("the new master was told %+v", env)
		}
		txt, err := os.ReadFile(filepath.Join(dir, "env.txt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"LISTEN_FDS=", "LISTEN_PID=", "WATCHDOG_PID=", EnvCheck + "="} {
			if strings.Contains("\n"+string(txt), "\n"+v) {
				t.Errorf("the new master inherited %s", v)
			}
		}
	})
}

// TestUpgradeSignalRefused: SIGUSR2 starts an upgrade; a refusal is logged.
func TestUpgradeSignalRefused(t *testing.T) {
	h := newHarness(t, 1)
	h.startPool()
	h.m.signal(syscall.SIGUSR2)
	if h.m.upgrade != nil || !h.logged("upgrade refused: signal=SIGUSR2") || !h.logged("no control socket") {
		t.Errorf("SIGUSR2 without a control socket:\n%s", h.logs)
	}
}

// TestUpgradeFilesFail: a descriptor that cannot be passed refuses the
// upgrade before anything starts.
func TestUpgradeFilesFail(t *testing.T) {
	h := newHarness(t, 1)
	withControl(t, h)
	h.startPool()
	_ = h.m.ctl.Close()
	resp, ok := answered(h.upgradeCmd())
	if !ok || resp.OK || !strings.HasPrefix(resp.Error, "upgrade: control socket:") || h.m.upgrade != nil {
		t.Errorf("upgrade with a closed control socket: %+v", resp)
	}
	if _, err := dupListener(fakeListener{}); err == nil || !strings.Contains(err.Error(), "has no descriptor") {
		t.Errorf("dupListener of a listener with no descriptor: %v", err)
	}
	if s := lastLine([]byte("\n\n")); s != "it printed nothing" {
		t.Errorf("lastLine of blank output: %q", s)
	}
	if s := lastLine([]byte("one\n two \n")); s != "two" {
		t.Errorf("lastLine: %q", s)
	}
}

// fakeListener is a net.Listener with no descriptor.
type fakeListener struct{ net.Listener }
