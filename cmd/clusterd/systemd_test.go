package main

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// notification is one sd_notify datagram and the pid that sent it.
type notification struct {
	pid   int32
	lines []string
	at    time.Time
}

func (n notification) has(line string) bool {
	for _, l := range n.lines {
		if l == line {
			return true
		}
	}
	return false
}

func (n notification) value(key string) string {
	for _, l := range n.lines {
		if v, ok := strings.CutPrefix(l, key+"="); ok {
			return v
		}
	}
	return ""
}

// notifySocket plays the service manager's end of NOTIFY_SOCKET: a
// unixgram socket that learns each sender's pid (SO_PASSCRED).
type notifySocket struct {
	path string
	conn *net.UnixConn
	c    chan notification
}

func listenNotify(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := conn.SyscallConn()
	var serr error
	_ = raw.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	n := &notifySocket{path: path, conn: conn, c: make(chan notification, 1024)}
	done := make(chan struct{})
	go func() { defer close(done); n.read() }()
	t.Cleanup(func() { _ = conn.Close(); <-done })
	return n
}

func (n *notifySocket) read() {
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	for {
		nb, noob, _, _, err := n.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			return
		}
		msg := notification{pid: -1, lines: strings.Split(string(buf[:nb]), "\n"), at: time.Now()}
		if cms, err := syscall.ParseSocketControlMessage(oob[:noob]); err == nil && len(cms) == 1 {
			if cred, err := syscall.ParseUnixCredentials(&cms[0]); err == nil {
				msg.pid = cred.Pid
			}
		}
		select {
		case n.c <- msg:
		default:
		}
	}
}

// next returns the next notification that is not only a STATUS= or
// WATCHDOG=1, collecting those on the way.
func (n *notifySocket) next(t *testing.T, d time.Duration, seen *[]notification) notification {
	t.Helper()
	timeout := time.After(d)
	for {
		select {
		case msg := <-n.c:
			*seen = append(*seen, msg)
			if msg.value("STATUS") == "" && !msg.has("WATCHDOG=1") {
				return msg
			}
		case <-timeout:
			t.Fatalf("no notification within %v; seen %v", d, *seen)
			return notification{}
		}
	}
}

func monotonicNow(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1e3
}

// TestNotifyAcrossStartReloadStop: a service manager listening on
// NOTIFY_SOCKET hears READY=1 once both workers serve, RELOADING=1 (with
// MONOTONIC_USEC) and READY=1 around `ctl reload`, then STOPPING=1 — all
// from the master, none from a worker, and no watchdog pings unasked.
func TestNotifyAcrossStartReloadStop(t *testing.T) {
	ns := listenNotify(t)
	path := ctlPath(t)
	c := startCluster(t, 0, []string{"NOTIFY_SOCKET=" + ns.path}, "--workers", "2", "--control", path)
	var seen []notification
	ready := ns.next(t, 10*time.Second, &seen)
	if !ready.has("READY=1") {
		t.Fatalf("first notification %q, want READY=1", ready.lines)
	}
	if n := len(servingPids(t, path)); n != 2 {
		t.Errorf("READY=1 with %d workers serving, want 2", n)
	}

	before := monotonicNow(t)
	if code, _, errOut := ctlRun(t, path, "reload"); code != 0 {
		t.Fatalf("ctl reload: %d %s", code, errOut)
	}
	reloading := ns.next(t, 5*time.Second, &seen)
	if !reloading.has("RELOADING=1") {
		t.Fatalf("after reload: %q, want RELOADING=1", reloading.lines)
	}
	usec, err := strconv.ParseInt(reloading.value("MONOTONIC_USEC"), 10, 64)
	if err != nil || usec < before || usec > monotonicNow(t) {
		t.Errorf("MONOTONIC_USEC=%q, want a time between %d and now", reloading.value("MONOTONIC_USEC"), before)
	}
	if again := ns.next(t, 5*time.Second, &seen); !again.has("READY=1") {
		t.Fatalf("after the roll: %q, want READY=1", again.lines)
	}

	c.signal(syscall.SIGTERM)
	if stopping := ns.next(t, 5*time.Second, &seen); !stopping.has("STOPPING=1") {
		t.Fatalf("after SIGTERM: %q, want STOPPING=1", stopping.lines)
	}
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("master exit code %d", code)
	}
	drain(ns.c, &seen)

	var statuses []string
	for _, msg := range seen {
		if msg.pid != int32(c.cmd.Process.Pid) {
			t.Errorf("notification %q from pid %d, not the master %d", msg.lines, msg.pid, c.cmd.Process.Pid)
		}
		if msg.has("WATCHDOG=1") {
			t.Errorf("watchdog ping with no WATCHDOG_USEC")
		}
		if s := msg.value("STATUS"); s != "" {
			statuses = append(statuses, s)
		}
		if msg.has("READY=1") && msg.has("RELOADING=1") {
			t.Errorf("READY=1 and RELOADING=1 in one datagram: %q", msg.lines)
		}
	}
	for _, want := range []string{"2/2 workers ready, generation 0", "reloading to generation 1: 2/2 workers ready",
		"2/2 workers ready, generation 1"} {
		if !contains(statuses, want) {
			t.Errorf("no STATUS=%s in %q", want, statuses)
		}
	}
}

func drain(c <-chan notification, seen *[]notification) {
	for {
		select {
		case msg := <-c:
			*seen = append(*seen, msg)
		default:
			return
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestNotifyWatchdog: with WATCHDOG_USEC set, the master pings every half
// interval from its supervisor loop.
func TestNotifyWatchdog(t *testing.T) {
	ns := listenNotify(t)
	c := startCluster(t, 1, []string{"NOTIFY_SOCKET=" + ns.path, "WATCHDOG_USEC=1000000"}, "--workers", "1")
	var pings []time.Time
	deadline := time.After(3 * time.Second)
	for len(pings) < 5 {
		select {
		case msg := <-ns.c:
			if msg.has("WATCHDOG=1") {
				if msg.pid != int32(c.cmd.Process.Pid) {
					t.Errorf("ping from pid %d, not the master", msg.pid)
				}
				pings = append(pings, msg.at)
			}
		case <-deadline:
			t.Fatalf("%d watchdog pings in 3s at WATCHDOG_USEC=1s, want 5", len(pings))
		}
	}
	for i := 1; i < len(pings); i++ {
		// Half the interval, checked on a 250ms tick; well under the
		// 1s after which a service manager would kill the service.
		if gap := pings[i].Sub(pings[i-1]); gap < 400*time.Millisecond || gap > 900*time.Millisecond {
			t.Errorf("ping %d came %v after the previous one, want about 500ms", i, gap)
		}
	}
	c.signal(syscall.SIGTERM)
	c.wait(10 * time.Second)
}
