package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// With envMain set, the test binary is the example program: the master it
// becomes re-executes this binary, with the same variable, for its workers.
const envMain = "CLUSTERD_ROUTER_EXAMPLE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(envMain) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

var (
	listeningRE = regexp.MustCompile(`master: listening: addr=(\S+)`)
	readyRE     = regexp.MustCompile(`worker ready: id=\d+ pid=(\d+)`)
)

// example is the example program running as a master and its workers.
type example struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan struct{}

	mu      sync.Mutex
	addr    string
	workers map[int]bool // pids of the workers that reported ready
	log     []string
}

func startExample(t *testing.T, workers int) *example {
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--workers", strconv.Itoa(workers))
	cmd.Env = append(os.Environ(), envMain+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e := &example{t: t, cmd: cmd, exited: make(chan struct{}), workers: map[int]bool{}}
	go func() {
		e.scan(stderr)
		_ = cmd.Wait()
		close(e.exited)
	}()
	t.Cleanup(e.kill)
	deadline := time.Now().Add(10 * time.Second)
	for !e.ready(workers) {
		if time.Now().After(deadline) {
			t.Fatalf("not serving with %d workers after 10s; log:\n%s", workers, e.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func (e *example) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		e.mu.Lock()
		e.log = append(e.log, line)
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			e.addr = m[1]
		}
		if m := readyRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			e.workers[pid] = true
		}
		e.mu.Unlock()
	}
}

func (e *example) ready(n int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addr != "" && len(e.workers) >= n
}

func (e *example) isWorker(pid int) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workers[pid]
}

func (e *example) logText() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return strings.Join(e.log, "\n")
}

func (e *example) url(path string) string { return "http://" + e.addr + path }

// kill stops whatever is left, by pid: the master, then its workers.
func (e *example) kill() {
	select {
	case <-e.exited:
	default:
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for pid := range e.workers {
		if alive(pid) {
			e.t.Errorf("worker %d outlived the master", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func TestRouterUnderClusterd(t *testing.T) {
	e := startExample(t, 2)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	if status, body := fetch(t, client, "GET", e.url("/"), ""); status != 200 || !strings.HasPrefix(body, "hello from worker ") {
		t.Errorf("GET /: %d %q", status, body)
	}
	var user struct {
		ID     int    `json:"id"`
		Name   string `json:"name"`
		Worker int    `json:"worker"`
	}
	status, body := fetch(t, client, "GET", e.url("/users/42"), "")
	if err := json.Unmarshal([]byte(body), &user); err != nil || status != 200 || user.ID != 42 || !e.isWorker(user.Worker) {
		t.Errorf("GET /users/42: %d %q, not from a worker", status, body)
	}
	if status, body := fetch(t, client, "GET", e.url("/users/abc"), ""); status != 400 || !strings.Contains(body, "number") {
		t.Errorf("GET /users/abc: %d %q", status, body)
	}
	if status, body := fetch(t, client, "POST", e.url("/users/7/notes"), "remember the milk"); status != 201 ||
		!strings.Contains(body, `"note":"remember the milk"`) || !strings.Contains(body, `"bytes":17`) {
		t.Errorf("POST /users/7/notes: %d %q", status, body)
	}
	if status, _ := fetch(t, client, "POST", e.url("/users/7/notes"), strings.Repeat("x", maxNote+1)); status != 413 {
		t.Errorf("POST of a large note: %d", status)
	}
	if status, _ := fetch(t, client, "GET", e.url("/panic"), ""); status != 500 {
		t.Errorf("GET /panic: %d", status)
	}
	if status, _ := fetch(t, client, "GET", e.url("/no/such/route"), ""); status != 404 {
		t.Errorf("GET /no/such/route: %d", status)
	}
	checkStream(t, client, e.url("/stream?n=4"))

	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM; log:\n%s", e.logText())
	}
	if code := e.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, e.logText())
	}
	if log := e.logText(); !strings.Contains(log, "GET /users/42 200") {
		t.Errorf("no request log line forwarded by the master:\n%s", log)
	}
}

func fetch(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// checkStream reads the streamed lines as they come: the first must arrive
// well before the last, which is written 150 ms later.
func checkStream(t *testing.T, c *http.Client, url string) {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.Join(resp.TransferEncoding, ",") != "chunked" {
		t.Errorf("stream: Transfer-Encoding %v", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	var at []time.Duration
	for i := 1; i <= 4; i++ {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, fmt.Sprintf("line %d of 4 ", i)) {
			t.Fatalf("stream line %d: %q %v", i, line, err)
		}
		at = append(at, time.Since(start))
	}
	if at[3]-at[0] < 100*time.Millisecond {
		t.Errorf("stream lines arrived at %v: not as they were written", at)
	}
}
