package exampletest

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/testserve"
)

// RunMain runs main instead of the tests when the variable env is "1":
// the test binary is then the example program, and the master it becomes
// re-executes it, with the same variable, for its workers. Call it first
// in TestMain.
func RunMain(env string, main func()) {
	if os.Getenv(env) == "1" {
		main()
		os.Exit(0)
	}
}

var (
	listeningRE = regexp.MustCompile(`master: listening: addr=(\S+)`)
	readyRE     = regexp.MustCompile(`worker ready: id=\d+ pid=(\d+)`)
)

// A Cluster is an example program running as a master and its workers.
type Cluster struct {
	t      *testing.T
	cmd    *exec.Cmd
	exited chan struct{}

	mu      sync.Mutex
	addr    string
	workers map[int]bool // pids of the workers that reported ready
	log     []string
}

// StartCluster runs the test binary as the example program (see RunMain)
// with --listen 127.0.0.1:0 --workers N and args, and waits until N
// workers serve. Whatever is left of it is killed when the test ends.
func StartCluster(t *testing.T, env string, workers int, args ...string) *Cluster {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--workers", strconv.Itoa(workers)}, args...)
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), env+"=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, cmd: cmd, exited: make(chan struct{}), workers: map[int]bool{}}
	go func() {
		c.scan(stderr)
		_ = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(c.kill)
	if !c.WaitFor(10*time.Second, func() bool { return c.readyWorkers() >= workers && c.Addr() != "" }) {
		t.Fatalf("not serving with %d workers after 10s; log:\n%s", workers, c.Log())
	}
	return c
}

func (c *Cluster) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		c.mu.Lock()
		c.log = append(c.log, line)
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			c.addr = m[1]
		}
		if m := readyRE.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			c.workers[pid] = true
		}
		c.mu.Unlock()
	}
}

func (c *Cluster) readyWorkers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.workers)
}

// WaitFor polls cond until it holds or d has passed, and reports which.
func (c *Cluster) WaitFor(d time.Duration, cond func() bool) bool {
	return testserve.Poll(d, cond)
}

// Addr is the address the master listens on.
func (c *Cluster) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.addr
}

// URL is the http URL of path on the cluster.
func (c *Cluster) URL(path string) string { return "http://" + c.Addr() + path }

// IsWorker reports whether pid is one of the cluster's workers.
func (c *Cluster) IsWorker(pid int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.workers[pid]
}

// Log returns what the master logged so far, its workers' lines included.
func (c *Cluster) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.log, "\n")
}

// LogCount counts the log lines containing s.
func (c *Cluster) LogCount(s string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, l := range c.log {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// Signal sends sig to the master.
func (c *Cluster) Signal(sig os.Signal) {
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
}

// Stop stops the cluster with SIGTERM and checks it exits 0 within d.
func (c *Cluster) Stop(d time.Duration) {
	c.t.Helper()
	c.Signal(unix.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(d):
		c.t.Fatalf("still running %v after SIGTERM; log:\n%s", d, c.Log())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		c.t.Fatalf("exit code %d after SIGTERM; log:\n%s", code, c.Log())
	}
}

// kill stops whatever is left, by pid: the master, then its workers.
func (c *Cluster) kill() {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for pid := range c.workers {
		if testserve.Alive(pid) {
			c.t.Errorf("worker %d outlived the master", pid)
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}
