package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMasterSurvivesClosedStderr: the reader of the master's stderr goes
// away (a log shipper that restarts); the next log lines must not kill the
// master (SIGPIPE), which keeps serving and stops cleanly.
func TestMasterSurvivesClosedStderr(t *testing.T) {
	path := ctlPath(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--workers", "2", "--control", path,
		"--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), envMain+"=1")
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	remember(cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	defer func() {
		select {
		case <-exited:
		default:
			_ = cmd.Process.Signal(syscall.SIGQUIT)
			<-exited
		}
	}()
	sc := bufio.NewScanner(r)
	for ready := 0; ready < 2 && sc.Scan(); {
		var l map[string]any
		if json.Unmarshal(sc.Bytes(), &l) == nil && l["@message"] == "worker ready" {
			remember(int(l["pid"].(float64)))
			ready++
		}
	}
	_ = r.Close() // the reader goes away; the master's next line meets EPIPE
	for i := 0; i < 2; i++ {
		if code, _, errOut := ctlRun(t, path, "reload"); code != 0 {
			t.Fatalf("ctl reload %d with stderr closed: exit %d, %s", i, code, errOut)
		}
	}
	for _, ws := range status(t, path).Workers {
		remember(ws.PID)
	}
	if code, _, errOut := ctlRun(t, path, "stop"); code != 0 {
		t.Fatalf("ctl stop: exit %d, %s", code, errOut)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("master did not stop")
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("master exit: %v", cmd.ProcessState)
	}
}

// TestOrphansFinishInflight: kill -9 of the master with requests in flight:
// its workers (whose stderr pipe has no reader any more) finish them.
func TestOrphansFinishInflight(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2")
	const n = 4
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, err := c.get(newConnClient(), "/delay?ms=600")
			if err != nil {
				t.Logf("request: %v", err)
			}
			codes <- code
		}()
	}
	time.Sleep(200 * time.Millisecond) // every request reached a worker
	_ = c.cmd.Process.Kill()
	wg.Wait()
	close(codes)
	ok := 0
	for code := range codes {
		if code == 200 {
			ok++
		}
	}
	if ok != n {
		t.Errorf("%d of %d in-flight requests completed after the master was killed", ok, n)
	}
}

// TestKilledWorkersChildrenEnd: a worker that started a child (holding the
// worker's stderr) is killed; the master replaces it at once instead of
// waiting on the child's pipe, and the child does not survive.
func TestKilledWorkersChildrenEnd(t *testing.T) {
	dir := t.TempDir()
	c := startCluster(t, 1, []string{envChild + "=" + dir}, "--workers", "1")
	var victim int
	for _, pid := range c.livePids() {
		victim = pid
	}
	b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(victim)))
	if err != nil {
		t.Fatal(err)
	}
	child, _ := strconv.Atoi(string(b))
	remember(child)
	defer func() { _ = syscall.Kill(child, syscall.SIGKILL) }()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitLog(3*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker exited unexpectedly" && l["pid"] == float64(victim)
	})
	c.waitReady(1, 3*time.Second)
	waitFor(t, 2*time.Second, func() bool { return !alive(child) })
}

// TestReloadDuringRollIsQueued: a SIGHUP during a rolling restart is logged
// and rolls the workers once more when the running roll ends.
func TestReloadDuringRollIsQueued(t *testing.T) {
	c := startCluster(t, 2, []string{envSlowStart + "=300"}, "--workers", "2")
	c.signal(syscall.SIGHUP)
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		return l["@message"] == "rolling restart" && l["generation"] == float64(1)
	})
	c.signal(syscall.SIGHUP)
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		return strings.HasPrefix(l["@message"].(string), "reload queued")
	})
	c.waitLog(10*time.Second, func(l map[string]any) bool {
		return l["@message"] == "rolling restart done" && l["generation"] == float64(2)
	})
}

// TestCtlTimeout: a master that accepts but never answers makes ctl fail
// within --timeout with one line, not hang.
func TestCtlTimeout(t *testing.T) {
	path := ctlPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			_ = c.Close()
		}
		mu.Unlock()
	}()
	start := time.Now()
	code, _, errOut := ctlRun(t, path, "--timeout", "300ms", "status")
	took := time.Since(start)
	if code != 1 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "did not answer within 300ms") {
		t.Errorf("ctl against a silent master: exit %d, %q", code, errOut)
	}
	if took > 3*time.Second {
		t.Errorf("ctl took %v with --timeout 300ms", took)
	}
	if code, _, errOut := ctlRun(t, path, "--timeout", "0s", "status"); code != 2 || !strings.Contains(errOut, "--timeout must be positive") {
		t.Errorf("ctl --timeout 0s: exit %d, %q", code, errOut)
	}
}

// limitFiles lowers pid's descriptor limit to what it has open plus spare.
func limitFiles(t *testing.T, pid, spare int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	err = unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim)
	if err == nil {
		lim.Cur = uint64(len(ents) + spare)
		err = unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil)
	}
	if err != nil {
		t.Skipf("cannot lower the master's descriptor limit: %v", err)
	}
}

// countLogs counts the log lines whose message is one of msgs.
func (c *cluster) countLogs(msgs ...string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.logs {
		for _, m := range msgs {
			if l["@message"] == m {
				n++
			}
		}
	}
	return n
}

// TestAdversarialControlFlood: with the master at its descriptor limit, a
// flood of silent control connections neither kills the control socket
// nor the master; once the flood ends, ctl works again.
func TestAdversarialControlFlood(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 1, nil, "--workers", "1", "--control", path)
	limitFiles(t, c.cmd.Process.Pid, 4)
	var flood []net.Conn
	for i := 0; i < 200; i++ {
		if fc, err := net.DialTimeout("unix", path, 100*time.Millisecond); err == nil {
			flood = append(flood, fc)
		}
	}
	time.Sleep(500 * time.Millisecond) // the master meets EMFILE meanwhile
	for _, fc := range flood {
		_ = fc.Close()
	}
	var errOut string
	ok := false
	for i := 0; i < 5 && !ok; i++ { // the silent ones it holds time out in 2s
		var code int
		code, _, errOut = ctlRun(t, path, "--timeout", "3s", "status")
		ok = code == 0
	}
	if !ok {
		t.Fatalf("ctl status after a control flood: %s", errOut)
	}
	if n := c.countLogs("control socket", "control socket: accept failed, retrying"); n == 0 || n > 5 {
		t.Errorf("%d accept error lines in about a second; want the limit reached, and the lines rate-limited", n)
	}
	c.signal(syscall.SIGTERM)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("master exit %d", code)
	}
}

// TestAdversarialRRAtFileLimit: in rr mode at the descriptor limit, the
// master neither spins nor logs a line per dropped connection, and serves
// again when descriptors free up.
func TestAdversarialRRAtFileLimit(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2", "--sched", "rr")
	limitFiles(t, c.cmd.Process.Pid, 3)
	var conns []net.Conn
	deadline := time.Now().Add(time.Second)
	for len(conns) < 400 && time.Now().Before(deadline) {
		nc, err := net.DialTimeout("tcp", c.addr, 200*time.Millisecond)
		if err != nil {
			continue
		}
		_, _ = nc.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		conns = append(conns, nc)
	}
	time.Sleep(300 * time.Millisecond)
	n := c.countLogs("accept", "accept failed, retrying", "dropped a connection: no worker took it")
	for _, nc := range conns {
		_ = nc.Close()
	}
	if n == 0 || n > 6 {
		t.Errorf("%d accept/drop lines in 1.3s over %d connections; want the limit reached, and the lines rate-limited", n, len(conns))
	}
	client := newConnClient()
	defer client.CloseIdleConnections()
	var lastErr error
	for i := 0; i < 50; i++ {
		code, _, err := c.get(client, "/")
		if err == nil && code == 200 {
			lastErr = nil
			break
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("no service after the connections closed: %v", lastErr)
	}
	c.signal(syscall.SIGTERM)
	c.wait(10 * time.Second)
}

// TestLimits: --workers and ctl scale refuse absurd pool sizes at once.
func TestLimits(t *testing.T) {
	code, stderr := runBinary(t, "--workers", "100000")
	if code != 2 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--workers must be at most 1024") {
		t.Errorf("--workers 100000: exit %d, %q", code, stderr)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"ctl", "--control", "/nonexistent", "scale", "1025"}, &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "from 1 to 1024") {
		t.Errorf("ctl scale 1025: exit %d, %q", code, errOut.String())
	}
}

// TestForeignControlDirRefused: a default control directory another user
// could write (or owns) is refused with one line, by the master and by ctl.
func TestForeignControlDirRefused(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	dir := filepath.Join(runtime, "clusterd")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o777)
	code, stderr := runBinary(t, "--workers", "1", "--listen", "127.0.0.1:0")
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "writable by group or others") {
		t.Errorf("master with a 0777 control dir: exit %d, %q", code, stderr)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"ctl", "status"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "writable by group or others") {
		t.Errorf("ctl with a 0777 control dir: exit %d, %q", code, errOut.String())
	}
	if os.Getuid() != 0 {
		return
	}
	// Another user's socket in a directory we trust: ctl does not talk to it.
	_ = os.Chmod(dir, 0o700)
	sock := filepath.Join(dir, "master-1.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Lchown(sock, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	errOut.Reset()
	if code := run([]string{"ctl", "--control", sock, "stop"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "belongs to uid 65534") {
		t.Errorf("ctl with a foreign socket: exit %d, %q", code, errOut.String())
	}
	// The master refuses a default directory owned by another user.
	_ = os.Remove(sock)
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	code, stderr = runBinary(t, "--workers", "1", "--listen", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "belongs to uid 65534") {
		t.Errorf("master with a foreign control dir: exit %d, %q", code, stderr)
	}
}

// TestCtlTimeoutLongReload: a reload longer than --timeout succeeds: the
// master says it is still rolling more often than ctl's timeout.
func TestCtlTimeoutLongReload(t *testing.T) {
	path := ctlPath(t)
	startCluster(t, 1, []string{envSlowStart + "=700"}, "--workers", "1", "--control", path)
	start := time.Now()
	code, out, errOut := ctlRun(t, path, "--timeout", "300ms", "reload")
	if code != 0 || !strings.Contains(out, "generation 1") {
		t.Fatalf("ctl --timeout 300ms reload: exit %d, %q %q", code, out, errOut)
	}
	if took := time.Since(start); took < 700*time.Millisecond {
		t.Errorf("the reload took %v; the test needs one longer than --timeout", took)
	}
}
