package main

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
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
