package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The adversarial suite (go test -run Adversarial): what a hostile or
// unlucky production environment does to a running cluster. Every test is
// bounded in connections, kills and time.

// TestAdversarialKillWorkersUnderLoad: kill -9 of random workers (among
// those holding connections) under keep-alive load. Each victim is stopped
// first and the connections it holds are noted; only those may fail, each
// at most once.
func TestAdversarialKillWorkersUnderLoad(t *testing.T) {
	for _, sched := range []string{"shared", "rr"} {
		t.Run(sched, func(t *testing.T) { testKillWorkersUnderLoad(t, sched) })
	}
}

func testKillWorkersUnderLoad(t *testing.T, sched string) {
	const workers, conns, kills = 3, 24, 4
	c := startCluster(t, workers, nil, "--workers", "3", "--sched", sched)
	port := portOf(t, c.addr)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	l := startChaosLoad(c.addr, "/", "Hello World\n", conns, 30*time.Second)
	defer l.stopAndWait()
	cut := 0
	for i := 0; i < kills; i++ {
		time.Sleep(time.Duration(150+rng.IntN(250)) * time.Millisecond)
		id, victim := pickVictim(t, rng, c.waitReady(workers, 5*time.Second), port)
		// Stopped, the victim accepts nothing more: the connections it
		// holds now are exactly those the kill cuts.
		_ = syscall.Kill(victim, syscall.SIGSTOP)
		cut += l.doom(peerPorts(t, victim, port))
		if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		c.waitLog(5*time.Second, func(m map[string]any) bool {
			return m["@message"] == "worker ready" && m["id"] == float64(id) && int(m["pid"].(float64)) != victim
		})
		t.Logf("kill %d: worker %d (pid %d) replaced in %v", i+1, id, victim, time.Since(killed).Round(time.Millisecond))
	}
	okBefore := l.ok.Load()
	time.Sleep(300 * time.Millisecond)
	l.stopAndWait()
	t.Logf("seed %d, %d kills: %v", seed, kills, l)
	if n := l.strayFails.Load(); n != 0 {
		t.Errorf("%d requests failed on connections no killed worker held: %v", n, l)
	}
	if n := l.doomedFails.Load(); n > int64(cut) {
		t.Errorf("%d failures on %d cut connections: a connection failed twice", n, cut)
	}
	if l.ok.Load() <= okBefore {
		t.Errorf("nothing served after the last kill: %v", l)
	}
	if cut == 0 {
		t.Errorf("the killed workers held no connection: the test proved nothing")
	}
}

// pickVictim picks a random worker among those serving load connections
// (the kernel may spread them unevenly), or among all if none does.
func pickVictim(t *testing.T, rng *rand.Rand, live map[int]int, port int) (id, pid int) {
	t.Helper()
	var busy, all []int
	conns := serverConns(t, port)
	for id, pid := range live {
		all = append(all, id)
		if len(heldBy(t, pid, conns)) > 0 {
			busy = append(busy, id)
		}
	}
	if len(busy) == 0 {
		busy = all
	}
	slices.Sort(busy) // map order is random; the seed alone decides
	id = busy[rng.IntN(len(busy))]
	if live[id] <= 0 {
		t.Fatalf("no worker %d among %v", id, live)
	}
	return id, live[id]
}

// TestAdversarialFdExhaustion: under a low RLIMIT_NOFILE, clients open
// HTTP and control connections until the master and the workers run out of
// descriptors. Nothing may spin and the master must survive; once the
// control clients let go, ctl answers, and once the HTTP clients do, HTTP
// is served again.
func TestAdversarialFdExhaustion(t *testing.T) {
	for _, sched := range []string{"shared", "rr"} {
		t.Run(sched, func(t *testing.T) { testFdExhaustion(t, sched) })
	}
}

func testFdExhaustion(t *testing.T, sched string) {
	const nofile = 64
	path := ctlPath(t)
	c := startCluster(t, 2, []string{fmt.Sprintf("%s=%d", envNofile, nofile)},
		"--workers", "2", "--sched", sched, "--control", path, "--log-level", "info")
	pids := []int{c.cmd.Process.Pid}
	for _, pid := range c.livePids() {
		pids = append(pids, pid)
	}
	held := map[string][]net.Conn{}
	release := func(network string) {
		for _, nc := range held[network] {
			_ = nc.Close()
		}
		delete(held, network)
	}
	defer release("tcp")
	defer release("unix")
	logsBefore := c.lineCount()
	// HTTP connections first, so that under rr the master hands them out
	// until the workers are full; then silent control connections.
	for _, network := range []string{"tcp", "unix"} {
		target := map[string]string{"tcp": c.addr, "unix": path}[network]
		for i := 0; i < 3*nofile; i++ {
			if nc, err := net.DialTimeout(network, target, time.Second); err == nil {
				held[network] = append(held[network], nc)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let every accept loop hit the limit
	for i, pid := range pids {
		n := countFds(pid)
		t.Logf("pid %d: %d fds open", pid, n)
		// Under rr a worker gets only what the master could accept.
		if n < nofile-4 && (i == 0 || sched == "shared") {
			t.Errorf("pid %d has %d fds open, want about %d: the limit was not reached", pid, n, nofile)
		}
	}
	var before []int64
	for _, pid := range pids {
		if !alive(pid) {
			t.Fatalf("pid %d died at the fd limit; log:\n%s", pid, c.log())
		}
		before = append(before, cpuTicks(t, pid))
	}
	const window = time.Second
	time.Sleep(window)
	for i, pid := range pids {
		// A loop spinning on EMFILE burns the whole window (100 ticks).
		used := cpuTicks(t, pid) - before[i]
		t.Logf("pid %d: %d ms of CPU in %v at the fd limit", pid, used*10, window)
		if used > 20 {
			t.Errorf("pid %d used %d ms of CPU in %v at the fd limit: it spins", pid, used*10, window)
		}
	}
	// Hundreds of connections met the limit: the log says so a few times,
	// not once for each.
	if n := c.lineCount() - logsBefore; n > 20 {
		t.Errorf("%d log lines at the fd limit, want a few (rate-limited)", n)
	}
	// The control clients go first: the master answers while the workers
	// are still full.
	release("unix")
	code, out, took := ctlProc(t, 10*time.Second, path, "status")
	if code != 0 || !strings.Contains(out, "2 workers") {
		t.Errorf("ctl status after the master's fds were freed: exit %d after %v: %s", code, took, out)
	}
	t.Logf("ctl status answered %v after the master's fds were freed", took)
	release("tcp")
	client := newConnClient()
	waitFor(t, 5*time.Second, func() bool {
		code, _, err := c.get(client, "/")
		return err == nil && code == 200
	})
	for i := 0; i < 20; i++ {
		if code, _, err := c.get(client, "/"); err != nil || code != 200 {
			t.Fatalf("GET / after the fds were freed: %d %v", code, err)
		}
	}
	select {
	case <-c.exited:
		t.Fatalf("the master exited at the fd limit: %v", c.err)
	default:
	}
}

// lineCount counts the log lines seen so far.
func (c *cluster) lineCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.logs)
}

// TestAdversarialOutputPipeCloses: the master logs to a pipe whose reader
// goes away (a log shipper that restarts); its next log lines must not
// take down the master or its workers.
func TestAdversarialOutputPipeCloses(t *testing.T) {
	path := ctlPath(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--listen", "127.0.0.1:0", "--workers", "2",
		"--control", path, "--log-level", "debug", "--log-format", "json")
	cmd.Env = append(os.Environ(), envMain+"=1")
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	remember(cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	var workers []int
	defer func() { stopAndReap(t, cmd, exited, &workers) }()

	addr := readUntilReady(t, r, 2)
	_ = r.Close() // the reader goes away
	pids := servingPids(t, path)
	for _, pid := range pids {
		workers = append(workers, pid)
		remember(pid)
	}
	if pids[1] <= 0 {
		t.Fatalf("no worker 1 among %v", pids)
	}
	// Log lines: a worker killed and replaced, a rolling restart.
	_ = syscall.Kill(pids[1], syscall.SIGKILL)
	waitFor(t, 5*time.Second, func() bool { return len(servingPids(t, path)) == 2 && servingPids(t, path)[1] != pids[1] })
	if code, out, _ := ctlProc(t, 20*time.Second, path, "reload"); code != 0 {
		t.Errorf("ctl reload with the log pipe closed: exit %d: %s", code, out)
	}
	for _, pid := range servingPids(t, path) {
		workers = append(workers, pid)
		remember(pid)
	}
	client := newConnClient()
	for i := 0; i < 10; i++ {
		resp, err := client.Get("http://" + addr + "/")
		if err != nil {
			t.Fatalf("GET / with the log pipe closed: %v", err)
		}
		resp.Body.Close()
	}
	select {
	case <-exited:
		t.Fatalf("the master died when its log pipe closed: %v", cmd.ProcessState)
	default:
	}
	if n := len(servingPids(t, path)); n != 2 {
		t.Errorf("%d workers serving, want 2", n)
	}
}

// readUntilReady reads a JSON log from r until want workers are ready and
// returns the listening address.
func readUntilReady(t *testing.T, r *os.File, want int) string {
	t.Helper()
	_ = r.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer r.SetReadDeadline(time.Time{})
	var addr, tail string
	ready := map[float64]bool{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		tail += sc.Text() + "\n"
		var l map[string]any
		_ = json.Unmarshal(sc.Bytes(), &l)
		switch l["@message"] {
		case "listening":
			if a, ok := l["addr"].(string); ok && addr == "" {
				addr = a
			}
		case "worker ready":
			ready[l["id"].(float64)] = true
		}
		if addr != "" && len(ready) >= want {
			return addr
		}
	}
	t.Fatalf("not ready: %v; log:\n%s", sc.Err(), tail)
	return ""
}

// stopAndReap stops the master with SIGTERM (SIGKILL after 10 s) and
// checks that every worker it had is gone.
func stopAndReap(t *testing.T, cmd *exec.Cmd, exited chan struct{}, workers *[]int) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Errorf("master still running 10s after SIGTERM")
		_ = cmd.Process.Kill()
		<-exited
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range *workers {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("worker %d outlived its master", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// TestAdversarialMasterKilledInFlight: kill -9 of the master while four
// slow requests are in flight: the orphaned workers finish them, then exit.
func TestAdversarialMasterKilledInFlight(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2")
	workers := c.livePids()
	type result struct {
		code int
		body string
		err  error
	}
	const inflight = 4
	done := make(chan result, inflight)
	for i := 0; i < inflight; i++ {
		go func() {
			code, body, err := c.get(newConnClient(), "/delay?ms=600")
			done <- result{code, body, err}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < inflight; i++ {
		if r := <-done; r.err != nil || r.code != 200 || r.body != "waited 600ms\n" {
			t.Errorf("request in flight when the master died: %d %q %v", r.code, r.body, r.err)
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, pid := range workers {
		for alive(pid) && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("worker %d still running 3s after its master was killed", pid)
		}
	}
}

// TestAdversarialSilentControlFlood: hundreds of control connections that
// never send a byte do not keep `clusterd ctl status` from answering.
func TestAdversarialSilentControlFlood(t *testing.T) {
	const silent = 500
	path := ctlPath(t)
	c := startCluster(t, 2, nil, "--workers", "2", "--control", path, "--log-level", "info")
	var held []net.Conn
	defer func() {
		for _, nc := range held {
			_ = nc.Close()
		}
	}()
	for i := 0; i < silent; i++ {
		nc, err := net.DialTimeout("unix", path, 2*time.Second)
		if err != nil {
			t.Fatalf("control connection %d: %v", i, err)
		}
		held = append(held, nc)
	}
	for i := 0; i < 3; i++ {
		code, out, took := ctlProc(t, 10*time.Second, path, "status")
		if code != 0 || !strings.Contains(out, "2 workers") {
			t.Fatalf("ctl status with %d silent control connections: exit %d after %v: %s", silent, code, took, out)
		}
		t.Logf("ctl status answered in %v behind %d silent control connections", took, silent)
		if took > 3*time.Second {
			t.Errorf("ctl status took %v with %d silent control connections", took, silent)
		}
	}
	if code, _, err := c.get(newConnClient(), "/"); err != nil || code != 200 {
		t.Errorf("GET / during the flood: %d %v", code, err)
	}
}
