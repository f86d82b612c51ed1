package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const migrateSysctl = "/proc/sys/net/ipv4/tcp_migrate_req"

// noMigration makes sure the kernel does not move queued connections from
// a closed reuseport socket to another (net.ipv4.tcp_migrate_req = 0) for
// the test, restoring the setting after it; it skips when it cannot.
func noMigration(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(migrateSysctl)
	if err != nil {
		t.Skipf("cannot read %s (%v): this kernel has no connection migration to turn off", migrateSysctl, err)
	}
	old := strings.TrimSpace(string(b))
	if old == "0" {
		return
	}
	if err := os.WriteFile(migrateSysctl, []byte("0"), 0o644); err != nil {
		t.Skipf("net.ipv4.tcp_migrate_req is %s and cannot be set to 0 for the test: %v", old, err)
	}
	t.Cleanup(func() {
		if err := os.WriteFile(migrateSysctl, []byte(old), 0o644); err != nil {
			t.Errorf("restore net.ipv4.tcp_migrate_req=%s: %v", old, err)
		}
	})
}

// queuedConns is a set of connections that each sent one request and wait
// for its response.
type queuedConns []net.Conn

// queueRequests opens n connections to addr and sends a request on each.
// With the workers stopped, the kernel completes the handshakes and the
// connections wait in the listeners' accept queues.
func queueRequests(t *testing.T, addr string, n int) queuedConns {
	t.Helper()
	var qc queuedConns
	t.Cleanup(func() {
		for _, c := range qc {
			_ = c.Close()
		}
	})
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatalf("connection %d of %d: %v", i, n, err)
		}
		qc = append(qc, c)
		if _, err := io.WriteString(c, "GET /worker HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	return qc
}

// answers reads every connection's response within d and counts them:
// ok (200), reset by the server, and anything else (closed without an
// answer, timed out), with the first few failures.
func (qc queuedConns) answers(d time.Duration) (ok, resets, other int, servedBy map[int]int, fails []string) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	servedBy = map[int]int{}
	deadline := time.Now().Add(d)
	for _, c := range qc {
		wg.Add(1)
		go func(c net.Conn) {
			defer wg.Done()
			_ = c.SetReadDeadline(deadline)
			b, err := io.ReadAll(bufio.NewReader(c))
			mu.Lock()
			defer mu.Unlock()
			var pid int
			switch {
			case err == nil && strings.HasPrefix(string(b), "HTTP/1.1 200 "):
				ok++
				if i := strings.Index(string(b), `"pid":`); i >= 0 {
					_, _ = fmt.Sscanf(string(b[i+6:]), "%d", &pid)
				}
				servedBy[pid]++
				return
			case errors.Is(err, syscall.ECONNRESET):
				resets++
			default:
				other++
			}
			if len(fails) < 5 {
				fails = append(fails, fmt.Sprintf("%q %v", b, err))
			}
		}(c)
	}
	wg.Wait()
	return
}

// listenQueues returns the accept queue length of each listening socket on
// port (/proc/net/tcp shows it as rx_queue for a listener).
func listenQueues(t *testing.T, port int) []int {
	t.Helper()
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || f[3] != "0A" || hexPort(f[1]) != port {
			continue
		}
		var tx, rx int
		_, _ = fmt.Sscanf(f[4], "%x:%x", &tx, &rx)
		out = append(out, rx)
	}
	return out
}

// stopWorkers stops the workers (SIGSTOP) and returns a function that
// resumes them; the test's end resumes any still stopped.
func stopWorkers(t *testing.T, pids ...int) func(pids ...int) {
	t.Helper()
	stopped := map[int]bool{}
	resume := func(pids ...int) {
		for _, pid := range pids {
			if stopped[pid] {
				_ = syscall.Kill(pid, syscall.SIGCONT)
				delete(stopped, pid)
			}
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatalf("stop worker %d: %v", pid, err)
		}
		stopped[pid] = true
	}
	for _, pid := range pids { // a signal is sent at once, but stops the process later
		waitFor(t, 5*time.Second, func() bool { return procState(pid) == 'T' })
	}
	t.Cleanup(func() {
		for pid := range stopped {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	return resume
}

// procState is the state letter of process pid (R, S, T, …), 0 if unknown.
func procState(pid int) byte {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

func values(m map[int]int) []int {
	var out []int
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestReuseportScaleDownResetsNothing: the four slots' accept queues hold
// hundreds of connections while the workers are stopped; scaling to one
// worker with tcp_migrate_req off answers every one of them, whether the
// leaving workers come back to empty their queues or stay stopped (then
// the master takes their queues over once the graceful timeout passed).
func TestReuseportScaleDownResetsNothing(t *testing.T) {
	noMigration(t)
	for _, leaversResume := range []bool{true, false} {
		t.Run(fmt.Sprintf("leavers-resume=%v", leaversResume), func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 4, nil, "--workers", "4", "--sched", "reuseport",
				"--backlog", "1024", "--graceful-timeout", "1s", "--control", path)
			pids := servingPids(t, path)
			resume := stopWorkers(t, values(pids)...)
			const n = 800
			qc := queueRequests(t, c.addr, n)
			queues := listenQueues(t, portOf(t, c.addr))
			full := 0
			for _, q := range queues {
				if q > 0 {
					full++
				}
			}
			if len(queues) != 4 || full < 3 {
				t.Fatalf("accept queues before scaling: %v; want 4 sockets, at least 3 holding connections", queues)
			}
			if code, _, errOut := ctlRun(t, path, "scale", "1"); code != 0 {
				t.Fatalf("scale 1: %s", errOut)
			}
			time.Sleep(300 * time.Millisecond)
			resume(pids[1])
			if leaversResume {
				resume(pids[2], pids[3], pids[4])
			}
			ok, resets, other, servedBy, fails := qc.answers(15 * time.Second)
			t.Logf("queues %v; answered %d, reset %d, other %d; served by %v", queues, ok, resets, other, servedBy)
			if ok != n {
				t.Errorf("%d of %d queued connections answered, %d reset, %d failed otherwise: %v", ok, n, resets, other, fails)
			}
			waitFor(t, 10*time.Second, func() bool { return len(status(t, path).Workers) == 1 })
			if q := listenQueues(t, portOf(t, c.addr)); len(q) != 1 {
				t.Errorf("listening sockets after scaling to 1: %v", q)
			}
			if code, _, err := c.get(newConnClient(), "/"); err != nil || code != 200 {
				t.Errorf("after scaling: %d %v", code, err)
			}
		})
	}
}

// TestReuseportQueuesSurviveWorkers: connections queued on a slot whose
// worker is killed (kill -9) or rolled are served by its replacement,
// which gets the same socket: none is reset.
func TestReuseportQueuesSurviveWorkers(t *testing.T) {
	for _, how := range []string{"kill", "reload"} {
		t.Run(how, func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 2, nil, "--workers", "2", "--sched", "reuseport",
				"--backlog", "1024", "--graceful-timeout", "2s", "--control", path)
			pids := servingPids(t, path)
			resume := stopWorkers(t, values(pids)...)
			const n = 400
			qc := queueRequests(t, c.addr, n)
			reloaded := make(chan string, 1)
			switch how {
			case "kill":
				for _, pid := range pids {
					if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
						t.Fatal(err)
					}
				}
			case "reload":
				go func() {
					code, _, errOut := ctlRun(t, path, "reload")
					reloaded <- fmt.Sprintf("exit %d %s", code, errOut)
				}()
			}
			ok, resets, other, servedBy, fails := qc.answers(15 * time.Second)
			if how == "reload" {
				if r := <-reloaded; r != "exit 0 " {
					t.Errorf("reload: %s", r)
				}
			}
			t.Logf("answered %d, reset %d, other %d; served by %v", ok, resets, other, servedBy)
			if ok != n {
				t.Errorf("%d of %d queued connections answered, %d reset, %d failed otherwise: %v", ok, n, resets, other, fails)
			}
			for _, pid := range pids {
				if servedBy[pid] > 0 {
					t.Errorf("stopped worker %d served %d connections", pid, servedBy[pid])
				}
			}
			resume(values(pids)...)
		})
	}
}
