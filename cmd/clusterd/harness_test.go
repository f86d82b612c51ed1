package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testserve"
	"github.com/clusterd/clusterd/ipc"
	"github.com/clusterd/clusterd/master"
	"github.com/clusterd/clusterd/worker"
)

// The test binary plays clusterd itself: with envMain set it runs main's
// code, so the master it becomes re-executes this binary for its workers.
const (
	envMain  = "CLUSTERD_TEST_MAIN"
	envCrash = "CLUSTERD_TEST_CRASH" // workers fail at start-up
	envHang  = "CLUSTERD_TEST_HANG"  // GET /hang blocks the worker's event loop
	// envChild: each worker starts a child that sleeps with the worker's
	// stderr, and writes its pid to DIR/<worker pid>.
	envChild     = "CLUSTERD_TEST_CHILD"
	envSleep     = "CLUSTERD_TEST_SLEEP"      // the process sleeps a minute
	envSlowStart = "CLUSTERD_TEST_SLOW_START" // workers after the first generation take N ms to start
	// envUpgradeFail: a master started for an upgrade exits 1 at once
	// (after passing its configuration check).
	envUpgradeFail = "CLUSTERD_TEST_UPGRADE_FAIL"
)

// startChild starts a process that holds this worker's stderr open.
func startChild(dir string) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envSleep+"=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "start child:", err)
		os.Exit(3)
	}
	name := filepath.Join(dir, strconv.Itoa(os.Getpid()))
	if err := os.WriteFile(name, []byte(strconv.Itoa(cmd.Process.Pid)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "write child pid:", err)
		os.Exit(3)
	}
}

// withHang adds GET /hang, which blocks the event loop for good, and GET
// /spin, which keeps it busy for good: handlers that break the rule that
// loop handlers must not block.
func withHang(h httpcore.Handler) httpcore.Handler {
	return httpcore.HandlerFunc(func(w *httpcore.ResponseWriter, r *httpcore.Request) {
		switch r.Path() {
		case "/hang":
			time.Sleep(time.Hour)
		case "/spin":
			spinForever()
		}
		h.ServeHTTP(w, r)
	})
}

// spinForever never returns; its name is what a goroutine dump must show.
func spinForever() {
	for n := uint64(0); ; n++ {
		spun.Store(n)
	}
}

var spun atomic.Uint64

// serveWithHang serves as clusterd does, with GET /hang added.
func serveWithHang(args []string) int {
	cfg, err := parseServe(args)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	app, closeApp, err := newApp(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer closeApp()
	return runApp(cfg, func(w *worker.Worker) httpcore.Handler { return withHang(app(w)) }, os.Stderr)
}

func TestMain(m *testing.M) {
	orphanScenario()
	if os.Getenv(envSleep) == "1" {
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	if os.Getenv(envMain) == "1" {
		gen, _ := strconv.Atoi(os.Getenv(ipc.EnvGeneration))
		from, err := strconv.Atoi(os.Getenv(envCrashGen))
		crashGen := err == nil && gen >= from
		if (os.Getenv(envCrash) == "1" || crashGen) && os.Getenv(ipc.EnvWorkerID) != "" {
			fmt.Fprintln(os.Stderr, "simulated start-up failure: cannot open config")
			os.Exit(3)
		}
		if ms, err := strconv.Atoi(os.Getenv(envSlowStart)); err == nil && gen >= 1 && os.Getenv(ipc.EnvWorkerID) != "" {
			time.Sleep(time.Duration(ms) * time.Millisecond)
		}
		if dir := os.Getenv(envChild); dir != "" && os.Getenv(ipc.EnvWorkerID) != "" {
			startChild(dir)
		}
		if os.Getenv(envUpgradeFail) == "1" && os.Getenv(master.EnvUpgrade) != "" {
			fmt.Fprintln(os.Stderr, "simulated new master failure: cannot load its plugins")
			os.Exit(1)
		}
		if os.Getenv(envHang) == "1" {
			os.Exit(serveWithHang(os.Args[1:]))
		}
		if err := setGroupsFromEnv(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	goroutines, sockets := runtime.NumGoroutine(), len(openSockets())
	code := m.Run()
	if code == 0 {
		code = checkLeaks(goroutines, sockets)
	}
	os.Exit(code)
}

// started records every pid the tests saw, to prove none outlives them.
var started struct {
	sync.Mutex
	pids []int
}

func remember(pid int) {
	started.Lock()
	started.pids = append(started.pids, pid)
	started.Unlock()
}

// openSockets lists this process's open sockets: a client connection, a
// listener or a control connection a test forgot to close.
func openSockets() []string {
	var out []string
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if link, _ := os.Readlink("/proc/self/fd/" + e.Name()); strings.HasPrefix(link, "socket:") {
			out = append(out, e.Name()+" → "+link)
		}
	}
	return out
}

func checkLeaks(goroutines, sockets int) int {
	code := 0
	started.Lock()
	for _, pid := range started.pids {
		if alive(pid) {
			fmt.Fprintf(os.Stderr, "leak: process %d still running\n", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
			code = 1
		}
	}
	started.Unlock()
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	for len(openSockets()) > sockets && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if open := openSockets(); len(open) > sockets {
		fmt.Fprintf(os.Stderr, "leak: %d open sockets, started with %d: %v\n", len(open), sockets, open)
		code = 1
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		buf := make([]byte, 1<<16)
		fmt.Fprintf(os.Stderr, "leak: %d goroutines, started with %d\n%s\n", n, goroutines, buf[:runtime.Stack(buf, true)])
		code = 1
	}
	return code
}

// alive reports whether pid is a running (not zombie) process.
var alive = testserve.Alive

// cluster is a clusterd master started from the test binary.
type cluster struct {
	t      *testing.T
	cmd    *exec.Cmd
	addr   string
	exited chan struct{}
	err    error // from Wait, once exited is closed

	mu    sync.Mutex
	logs  []map[string]any
	ready map[int]int // worker pid → id, for workers that reported ready
	tail  []string
}

// startCluster starts a master with args (plus --listen 127.0.0.1:0 and JSON
// logs) and env, and waits for want workers to be ready (0: don't wait).
func startCluster(t *testing.T, want int, env []string, args ...string) *cluster {
	t.Helper()
	return startClusterExe(t, os.Args[0], want, env, args...)
}

// startClusterExe is startCluster with exe, a copy of the test binary.
func startClusterExe(t *testing.T, exe string, want int, env []string, args ...string) *cluster {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--log-format", "json", "--log-level", "debug"}, args...)
	cmd := exec.Command(exe, args...)
	cmd.Env = append(append(os.Environ(), envMain+"=1"), env...)
	return startCmd(t, cmd, want)
}

// startCmd starts cmd, a master, and waits until it listens and want
// workers are ready (0: don't wait). The first listener logged is c.addr.
func startCmd(t *testing.T, cmd *exec.Cmd, want int) *cluster {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	remember(cmd.Process.Pid)
	c := &cluster{t: t, cmd: cmd, exited: make(chan struct{}), ready: map[int]int{}}
	scanned := make(chan struct{})
	go func() { c.scan(stderr); close(scanned) }()
	go func() { <-scanned; c.err = cmd.Wait(); close(c.exited) }()
	t.Cleanup(c.cleanup)
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		if l["@message"] == "listening" {
			c.addr = l["addr"].(string)
			return true
		}
		return false
	})
	if want > 0 {
		c.waitReady(want, 10*time.Second)
	}
	return c
}

func (c *cluster) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		var l map[string]any
		_ = json.Unmarshal([]byte(line), &l)
		c.mu.Lock()
		c.tail = append(c.tail, line)
		if l != nil {
			c.logs = append(c.logs, l)
			if l["@message"] == "worker ready" {
				pid := int(l["pid"].(float64))
				c.ready[pid] = int(l["id"].(float64))
				remember(pid)
			}
		}
		c.mu.Unlock()
	}
}

// waitLog waits until f accepts a log line (seen before or after the call).
func (c *cluster) waitLog(d time.Duration, f func(map[string]any) bool) map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for seen := 0; time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		logs := c.logs[seen:]
		seen = len(c.logs)
		c.mu.Unlock()
		for _, l := range logs {
			if f(l) {
				return l
			}
		}
	}
	c.t.Fatalf("no such log line within %v; log:\n%s", d, c.log())
	return nil
}

func (c *cluster) log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.tail, "\n")
}

// livePids returns the ready workers that are still running, by id.
func (c *cluster) livePids() map[int]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int]int{}
	for pid, id := range c.ready {
		if alive(pid) {
			out[id] = pid
		}
	}
	return out
}

func (c *cluster) waitReady(n int, d time.Duration) map[int]int {
	c.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if live := c.livePids(); len(live) >= n {
			return live
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.t.Fatalf("%d workers not ready within %v; log:\n%s", n, d, c.log())
	return nil
}

func (c *cluster) signal(sig syscall.Signal) {
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal master: %v", err)
	}
}

// wait waits for the master to exit and returns its exit code.
func (c *cluster) wait(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.exited:
		return c.cmd.ProcessState.ExitCode()
	case <-time.After(d):
		c.t.Fatalf("master still running after %v; log:\n%s", d, c.log())
		return -1
	}
}

// cleanup stops the master and every worker it started, by pid.
func (c *cluster) cleanup() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-c.exited:
		case <-time.After(5 * time.Second):
			_ = c.cmd.Process.Kill()
			<-c.exited
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid := range c.ready {
		for i := 0; alive(pid) && i < 200; i++ {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			c.t.Errorf("worker %d outlived its master", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if c.t.Failed() {
		c.t.Logf("master log:\n%s", strings.Join(c.tail, "\n"))
	}
}

// client returns an HTTP client that opens a new connection per request.
func newConnClient() *http.Client {
	return &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true},
	}
}

func (c *cluster) get(client *http.Client, path string) (int, string, error) {
	resp, err := client.Get("http://" + c.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// workerPid asks /worker which process served the request.
func (c *cluster) workerPid(client *http.Client) (int, error) {
	code, body, err := c.get(client, "/worker")
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("/worker: %d %s", code, body)
	}
	var w struct{ PID int }
	if err := json.Unmarshal([]byte(body), &w); err != nil {
		return 0, err
	}
	return w.PID, nil
}

// rawRequest writes req on a new connection and returns everything the
// server sends until it closes the connection (or 3 s pass).
func rawRequest(t *testing.T, addr, req string) (string, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, req); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, err := io.ReadAll(conn)
	return string(b), err == nil
}
