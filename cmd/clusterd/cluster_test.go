package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestHelloAndEcho(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2")
	client := newConnClient()
	code, body, err := c.get(client, "/")
	if err != nil || code != 200 || body != "Hello World\n" {
		t.Fatalf("GET / = %d %q, %v", code, body, err)
	}
	resp, err := client.Post("http://"+c.addr+"/echo?x=1", "text/plain", strings.NewReader("ping"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var echo struct {
		Method, URL, Body string
		Headers           map[string]string
	}
	if err := json.NewDecoder(resp.Body).Decode(&echo); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Type") != "application/json" || echo.Method != "POST" ||
		echo.URL != "/echo?x=1" || echo.Body != "ping" || echo.Headers["Content-Type"] != "text/plain" {
		t.Errorf("echo = %+v (%s)", echo, resp.Header.Get("Content-Type"))
	}
	if code, _, _ := c.get(client, "/nope"); code != 404 {
		t.Errorf("GET /nope = %d, want 404", code)
	}
}

// socketInodes returns the inodes of the sockets pid has open.
func socketInodes(t *testing.T, pid int) map[string]bool {
	t.Helper()
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			out[strings.Trim(link[len("socket:"):], "[]")] = true
		}
	}
	return out
}

// listenInodes returns the inodes of every socket listening on port.
func listenInodes(t *testing.T, port int) []string {
	t.Helper()
	var out []string
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" { // 0A: TCP_LISTEN
				continue
			}
			local := f[1]
			p, _ := strconv.ParseUint(local[strings.LastIndexByte(local, ':')+1:], 16, 16)
			if int(p) == port {
				out = append(out, f[9])
			}
		}
	}
	return out
}

// TestWorkersShareMastersSocket: the kernel has one listening socket on the
// port; the master holds it and every worker holds that same socket.
func TestWorkersShareMastersSocket(t *testing.T) {
	c := startCluster(t, 3, nil, "--workers", "3")
	_, portStr, _ := net.SplitHostPort(c.addr)
	port, _ := strconv.Atoi(portStr)
	inodes := listenInodes(t, port)
	if len(inodes) != 1 {
		t.Fatalf("%d listening sockets on port %d, want exactly 1 (the master's)", len(inodes), port)
	}
	if !socketInodes(t, c.cmd.Process.Pid)[inodes[0]] {
		t.Fatalf("master does not hold listening socket %s", inodes[0])
	}
	for id, pid := range c.livePids() {
		if !socketInodes(t, pid)[inodes[0]] {
			t.Errorf("worker %d (pid %d) does not hold the master's socket %s", id, pid, inodes[0])
		}
	}
}

// TestNewConnectionsSpreadAcrossWorkers: concurrent clients on new
// connections are served by more than one worker.
func TestNewConnectionsSpreadAcrossWorkers(t *testing.T) {
	c := startCluster(t, 3, nil, "--workers", "3")
	client := newConnClient()
	seen := map[int]int{}
	var mu sync.Mutex
	for round := 0; round < 10 && len(seen) < 2; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				pid, err := c.workerPid(client)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				seen[pid]++
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	if len(seen) < 2 {
		t.Fatalf("all requests served by one worker: %v", seen)
	}
	t.Logf("requests per worker pid: %v", seen)
}

// TestKilledWorkerIsReplaced: after kill -9 of a worker, a replacement is
// serving within 1 s and the other worker keeps answering throughout.
func TestKilledWorkerIsReplaced(t *testing.T) {
	for _, sched := range []string{"shared", "rr"} {
		t.Run(sched, func(t *testing.T) { testKilledWorkerIsReplaced(t, sched) })
	}
}

func testKilledWorkerIsReplaced(t *testing.T, sched string) {
	c := startCluster(t, 2, nil, "--workers", "2", "--sched", sched)
	before := c.livePids()
	victim, other := before[1], before[2]

	const clients = 4
	stop := make(chan struct{})
	var served sync.Map // pid → true
	var failures, total atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ { // steady clients on new connections
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := newConnClient()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				total.Add(1)
				pid, err := c.workerPid(client)
				if err != nil {
					failures.Add(1)
					continue
				}
				served.Store(pid, true)
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	l := c.waitLog(3*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker ready" && l["id"] == float64(1) && int(l["pid"].(float64)) != victim
	})
	replacement := int(l["pid"].(float64))
	readyAfter := time.Since(killed)
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, ok := served.Load(replacement); ok {
			break
		}
	}
	close(stop)
	wg.Wait()
	if readyAfter > 2*time.Second { // no back-off for a first crash; slack for a loaded machine
		t.Errorf("replacement ready after %v, want < 2s", readyAfter)
	}
	if _, ok := served.Load(replacement); !ok {
		t.Errorf("replacement %d served nothing", replacement)
	}
	if _, ok := served.Load(other); !ok {
		t.Errorf("the other worker %d served nothing", other)
	}
	// Only requests the victim had accepted when it died may fail.
	if failures.Load() > clients {
		t.Errorf("%d of %d requests failed around the kill", failures.Load(), total.Load())
	}
	c.waitLog(time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker exited unexpectedly" && l["status"] == "signal: killed"
	})
}

// TestCrashLoopBacksOff: workers that die at start-up are retried after
// growing delays, and the log says why they died.
func TestCrashLoopBacksOff(t *testing.T) {
	c := startCluster(t, 0, []string{envCrash + "=1"}, "--workers", "1")
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		return strings.Contains(fmt.Sprint(l["line"]), "simulated start-up failure")
	})
	var delays []string
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		if l["@message"] == "worker exited unexpectedly" {
			if l["status"] != "exit status 3" {
				t.Errorf("status = %v", l["status"])
			}
			delays = append(delays, fmt.Sprint(l["restart_in"]))
		}
		return len(delays) == 4
	})
	var prev time.Duration = -1
	for _, s := range delays {
		d, err := time.ParseDuration(s)
		if err != nil {
			d = parseNanos(t, s)
		}
		if d <= prev && d != 0 {
			t.Errorf("restart delays do not grow: %v", delays)
		}
		prev = d
	}
	if prev < 200*time.Millisecond {
		t.Errorf("fourth restart after %v, want a growing back-off: %v", prev, delays)
	}
	c.signal(syscall.SIGTERM)
	if code := c.wait(5 * time.Second); code != 0 {
		t.Errorf("master exit code %d", code)
	}
}

// parseNanos reads a duration logged as a JSON number of nanoseconds.
func parseNanos(t *testing.T, s string) time.Duration {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("bad duration %q", s)
	}
	return time.Duration(f)
}

// TestMasterKilledLeavesNoOrphans: kill -9 of the master ends every worker
// within 2 s.
func TestMasterKilledLeavesNoOrphans(t *testing.T) {
	c := startCluster(t, 3, nil, "--workers", "3")
	workers := c.livePids()
	_ = c.cmd.Process.Kill()
	c.wait(2 * time.Second)
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range workers {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("worker %d still running 2s after the master was killed", pid)
		}
	}
}

// TestGracefulStopFinishesInflight: SIGTERM while /delay?ms=1000 is in
// flight: the request completes with 200, then the master exits 0.
func TestGracefulStopFinishesInflight(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2")
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		code, body, err := c.get(newConnClient(), "/delay?ms=1000")
		done <- result{code, body, err}
	}()
	time.Sleep(200 * time.Millisecond)
	c.signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "waited 1000ms\n" {
		t.Fatalf("in-flight request: %d %q %v", r.code, r.body, r.err)
	}
	if el := time.Since(start); el < time.Second {
		t.Errorf("answered after %v, before its delay", el)
	}
	if code := c.wait(5 * time.Second); code != 0 {
		t.Errorf("master exit code %d, want 0", code)
	}
}

func TestMalformedRequestGets400AndClose(t *testing.T) {
	c := startCluster(t, 1, nil, "--workers", "1")
	for _, req := range []string{
		"GARBAGE\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		out, closed := rawRequest(t, c.addr, req)
		if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !closed {
			t.Errorf("%q: got %q (closed %v), want a 400 and a closed connection", req, out, closed)
		}
		if strings.Count(out, "HTTP/1.1") != 1 {
			t.Errorf("%q: more than one response: %q", req, out)
		}
	}
}

// runBinary runs the test binary as clusterd with args; it must exit on its own.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	remember(cmd.Process.Pid)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("clusterd %v did not exit; stderr:\n%s", args, stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

func TestBadStartGivesOneLineReason(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--workers", "0"}, "--workers must be at least 1"},
		{[]string{"--workers", "two"}, "invalid value"},
		{[]string{"--listen", "8080"}, "want host:port"},
		{[]string{"--idle-timeout", "-1s"}, "--idle-timeout must be positive"},
		{[]string{"--log-format", "xml"}, "--log-format must be text or json"},
		{[]string{"stray"}, `unexpected argument "stray"`},
		{[]string{"--sched", "random"}, `--sched must be shared, rr or reuseport, got "random"`},
		{[]string{"--root", "/nonexistent/dir"}, "--root: static root: open /nonexistent/dir: no such file or directory"},
		{[]string{"--h2c", "--root", "/tmp"}, "--h2c serves the demo app; it does not combine with --root"},
		{[]string{"--listen", busy.Addr().String()}, "address already in use"},
		{[]string{"--admin-listen", "9090"}, "--admin-listen \"9090\": want host:port"},
		{[]string{"--listen", "127.0.0.1:0", "--admin-listen", busy.Addr().String()}, "admin listener: listen tcp " + busy.Addr().String() + ": bind: address already in use"},
		{[]string{"--shutdown-delay", "-1s"}, "--shutdown-delay must not be negative"},
		{[]string{"--access-log-format", "xml"}, "--access-log-format must be common or json"},
		{[]string{"--access-log", "/nonexistent/dir/access.log"}, "access log: open /nonexistent/dir/access.log: no such file or directory"},
		{[]string{"--max-requests", "-1"}, "invalid value"},
		{[]string{"--max-rss", "0"}, "invalid size"},
	}
	for _, tt := range tests {
		code, stderr := runBinary(t, tt.args...)
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if code == 0 || len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
			t.Errorf("clusterd %v: exit %d, stderr %q; want non-zero and one line with %q", tt.args, code, stderr, tt.want)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"--help"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--workers N") {
		t.Errorf("--help: exit %d, %q", code, out.String())
	}
	out.Reset()
	if code := run([]string{"version"}, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "clusterd ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}

// TestServeRoot: --root serves files, with sendfile, from every worker.
func TestServeRoot(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>hi</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data.bin"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 2, nil, "--workers", "2", "--root", dir)
	client := newConnClient()
	if code, got, err := c.get(client, "/"); err != nil || code != 200 || got != "<p>hi</p>\n" {
		t.Errorf("GET / = %d %q %v", code, got, err)
	}
	if code, got, err := c.get(client, "/data.bin"); err != nil || code != 200 || got != string(body) {
		t.Errorf("GET /data.bin = %d, %d bytes, %v", code, len(got), err)
	}
	if code, _, _ := c.get(client, "/worker"); code != 404 {
		t.Errorf("GET /worker with --root = %d, want 404 (no demo app)", code)
	}
	if out, _ := rawRequest(t, c.addr, "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); !strings.HasPrefix(out, "HTTP/1.1 403 ") && !strings.HasPrefix(out, "HTTP/1.1 400 ") {
		t.Errorf("traversal: %q", out)
	}
}

// TestListensOnIPv4AndIPv6: --listen is repeatable and takes IPv6.
func TestListensOnIPv4AndIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		ln.Close()
	}
	c := startCluster(t, 2, nil, "--workers", "2", "--listen", "[::1]:0")
	l := c.waitLog(2*time.Second, func(l map[string]any) bool {
		return l["@message"] == "listening" && strings.HasPrefix(l["addr"].(string), "[::1]:")
	})
	client := newConnClient()
	for _, addr := range []string{c.addr, l["addr"].(string)} {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("%s: %v", addr, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d", addr, resp.StatusCode)
		}
	}
}

// TestImpatientStops: while a request is in flight, a second SIGTERM, or
// a SIGQUIT, stops the master and its workers at once.
func TestImpatientStops(t *testing.T) {
	for _, sigs := range [][]syscall.Signal{{syscall.SIGTERM, syscall.SIGTERM}, {syscall.SIGQUIT}} {
		t.Run(fmt.Sprint(sigs), func(t *testing.T) {
			c := startCluster(t, 2, nil, "--workers", "2")
			workers := c.livePids()
			done := make(chan error, 1)
			go func() {
				_, _, err := c.get(newConnClient(), "/delay?ms=3000")
				done <- err
			}()
			time.Sleep(200 * time.Millisecond)
			start := time.Now()
			for _, sig := range sigs {
				c.signal(sig)
				time.Sleep(50 * time.Millisecond)
			}
			c.wait(3 * time.Second)
			if el := time.Since(start); el > 2*time.Second { // not the 30s graceful timeout
				t.Errorf("master took %v to stop", el)
			}
			if err := <-done; err == nil {
				t.Error("the in-flight request completed; it should have been cut off")
			}
			for _, pid := range workers {
				if alive(pid) {
					t.Errorf("worker %d still running", pid)
				}
			}
		})
	}
}

// TestRoundRobin: under --sched rr the master alone holds the listening
// socket and new connections go to the workers in turn.
func TestRoundRobin(t *testing.T) {
	c := startCluster(t, 3, nil, "--workers", "3", "--sched", "rr")
	_, portStr, _ := net.SplitHostPort(c.addr)
	port, _ := strconv.Atoi(portStr)
	inodes := listenInodes(t, port)
	if len(inodes) != 1 || !socketInodes(t, c.cmd.Process.Pid)[inodes[0]] {
		t.Fatalf("listening sockets %v, want the master's only", inodes)
	}
	for id, pid := range c.livePids() {
		if socketInodes(t, pid)[inodes[0]] {
			t.Errorf("worker %d holds the listening socket under rr", id)
		}
	}
	client := newConnClient()
	seen := map[int]int{}
	for i := 0; i < 30; i++ {
		pid, err := c.workerPid(client)
		if err != nil {
			t.Fatal(err)
		}
		seen[pid]++
	}
	for pid, n := range seen {
		if n != 10 {
			t.Errorf("30 connections in turn over 3 workers: %v (pid %d)", seen, pid)
			break
		}
	}
	if len(seen) != 3 {
		t.Errorf("served by %d workers: %v", len(seen), seen)
	}
}
