package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// envOrphan: "1" makes each worker leave an orphan behind at start-up: it
// runs a child ("fork") that starts a grandchild ("sleep") and exits at
// once; the grandchild exits 300ms later.
const envOrphan = "CLUSTERD_TEST_ORPHAN"

func orphanScenario() {
	switch os.Getenv(envOrphan) {
	case "sleep":
		time.Sleep(300 * time.Millisecond)
		os.Exit(0)
	case "fork":
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), envOrphan+"=sleep")
		if err := cmd.Start(); err != nil {
			os.Exit(1)
		}
		os.Exit(0) // without waiting: the grandchild is orphaned
	case "1":
		if os.Getenv(ipc.EnvWorkerID) != "" {
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), envOrphan+"=fork")
			_ = cmd.Run()
		}
	}
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// logs returns the JSON log lines with message msg.
func (l *lockedBuffer) logs(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(l.b.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["@message"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// children returns the children of pid (as this process sees pids), each
// with its state letter and its pid inside its own PID namespace.
func children(pid int) map[int]struct {
	state string
	nspid int
} {
	out := map[int]struct {
		state string
		nspid int
	}{}
	paths, _ := filepath.Glob("/proc/[0-9]*/status")
	for _, path := range paths {
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited since the glob
		}
		var ppid, nspid int
		var state string
		for _, line := range strings.Split(string(b), "\n") {
			k, v, _ := strings.Cut(line, ":")
			f := strings.Fields(v)
			switch {
			case k == "PPid" && len(f) > 0:
				ppid, _ = strconv.Atoi(f[0])
			case k == "State" && len(f) > 0:
				state = f[0]
			case k == "NSpid" && len(f) > 0:
				nspid, _ = strconv.Atoi(f[len(f)-1])
			}
		}
		if ppid == pid {
			out[p] = struct {
				state string
				nspid int
			}{state, nspid}
		}
	}
	return out
}

// TestPID1ReapsOrphansNotWorkers: a master that is PID 1 (of its own PID
// namespace, as in a container) reaps the orphans its workers leave, and
// still sees its own workers' exit statuses.
func TestPID1ReapsOrphansNotWorkers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for a PID namespace")
	}
	ctl := ctlPath(t)
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--workers", "2", "--control", ctl,
		"--log-format", "json", "--log-level", "debug")
	cmd.Env = append(os.Environ(), envMain+"=1", envOrphan+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	var logs lockedBuffer
	cmd.Stderr = &logs
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot start in a new PID namespace: %v", err)
	}
	remember(cmd.Process.Pid)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("master log:\n%s", logs.String())
		}
	}()
	master := cmd.Process.Pid
	waitFor(t, 10*time.Second, func() bool { return len(logs.logs("worker ready")) >= 2 })
	if st := status(t, ctl); st.Master.PID != 1 {
		t.Fatalf("master pid %d in its namespace, want 1", st.Master.PID)
	}

	// Each worker left an orphan, which exits 300ms later as a child of
	// the master: none may stay a zombie.
	zombies := func() int {
		n := 0
		for _, c := range children(master) {
			if c.state == "Z" {
				n++
			}
		}
		return n
	}
	waitFor(t, 5*time.Second, func() bool { return len(logs.logs("reaped orphan")) >= 2 && zombies() == 0 })

	// A worker killed outside the master: the master, not the reaper,
	// collects its status, and replaces it.
	var victim int
	for pid, c := range children(master) {
		if c.state != "Z" && c.nspid == servingPids(t, ctl)[1] {
			victim = pid
		}
	}
	if victim == 0 {
		t.Fatalf("worker 1 not found among the master's children %v", children(master))
	}
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() bool { return len(logs.logs("worker exited unexpectedly")) >= 1 })
	if got := logs.logs("worker exited unexpectedly")[0]["status"]; got != "signal: killed" {
		t.Errorf("killed worker's status %q, want \"signal: killed\"", got)
	}
	waitFor(t, 10*time.Second, func() bool { return len(logs.logs("worker ready")) >= 3 })
	waitFor(t, 5*time.Second, func() bool { return len(logs.logs("reaped orphan")) >= 3 && zombies() == 0 })

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("master: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("master still running 10s after SIGTERM")
	}
}
