package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// envNofile, in a re-executed master, lowers RLIMIT_NOFILE (soft and hard)
// to its value before clusterd starts; its workers inherit the limit.
const envNofile = "CLUSTERD_TEST_NOFILE"

func init() {
	if os.Getenv(envMain) != "1" {
		return
	}
	if n, err := strconv.ParseUint(os.Getenv(envNofile), 10, 64); err == nil {
		lim := syscall.Rlimit{Cur: n, Max: n}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
			os.Exit(4)
		}
	}
}

// procStat returns field n (1-based, as in proc(5)) of /proc/PID/stat.
func procStat(pid, n int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat %q", s)
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if n-3 >= len(f) || n < 3 {
		return 0, fmt.Errorf("no field %d in %q", n, s)
	}
	return strconv.ParseInt(f[n-3], 10, 64)
}

// cpuTicks returns the CPU time pid has used, user plus system, in clock
// ticks (USER_HZ, 100 a second on Linux).
func cpuTicks(t *testing.T, pid int) int64 {
	t.Helper()
	u, err := procStat(pid, 14)
	if err != nil {
		t.Fatalf("cpu time of %d: %v", pid, err)
	}
	s, err := procStat(pid, 15)
	if err != nil {
		t.Fatalf("cpu time of %d: %v", pid, err)
	}
	return u + s
}

// rssKiB returns the resident set size of pid in KiB (VmRSS).
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("rss of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("rss of %d: %q", pid, line)
			}
			return n
		}
	}
	t.Fatalf("rss of %d: no VmRSS line", pid)
	return 0
}

// countFds returns how many file descriptors pid has open.
func countFds(pid int) int {
	ents, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents)
}

// peerPorts returns the client ports of the loopback TCP connections pid
// holds on server port port: the connections a kill of pid would cut.
func peerPorts(t *testing.T, pid, port int) map[int]bool {
	t.Helper()
	return heldBy(t, pid, serverConns(t, port))
}

// heldBy returns the client ports of the connections in conns (inode →
// client port) that pid holds.
func heldBy(t *testing.T, pid int, conns map[string]int) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for inode := range socketInodes(t, pid) {
		if p, ok := conns[inode]; ok {
			out[p] = true
		}
	}
	return out
}

// serverConns maps the inode of each TCP connection (not listener) on
// local port port to its client's port, in one pass over /proc/net/tcp,
// which on a busy machine holds tens of thousands of lines.
func serverConns(t *testing.T, port int) map[string]int {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	local := fmt.Sprintf(":%04X ", port)
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, local); i < 0 || i > 24 { // in the local address
			continue
		}
		fields := strings.Fields(line)
		if len(fields) >= 10 && hexPort(fields[1]) == port && fields[3] != "0A" { // 0A: TCP_LISTEN
			out[fields[9]] = hexPort(fields[2])
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// hexPort reads the port of an address from /proc/net/tcp ("0100007F:1F90").
func hexPort(addr string) int {
	p, _ := strconv.ParseUint(addr[strings.LastIndexByte(addr, ':')+1:], 16, 16)
	return int(p)
}

func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// ctlProc runs `clusterd ctl --control path args…` as a separate process
// and kills it after d: a ctl that hangs cannot hang the test.
func ctlProc(t *testing.T, d time.Duration, path string, args ...string) (code int, out string, took time.Duration) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"ctl", "--control", path}, args...)...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	remember(cmd.Process.Pid)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		_ = cmd.Process.Kill()
		<-done
		return -1, buf.String() + fmt.Sprintf("(killed after %v)", d), time.Since(start)
	}
	return cmd.ProcessState.ExitCode(), buf.String(), time.Since(start)
}

// chaosLoad is a keep-alive load whose failures are attributed: before a
// worker is killed, doom marks the connections that worker holds, and a
// failure on any other connection is a stray, which must not happen.
type chaosLoad struct {
	addr string
	want string // every answer's body
	stop chan struct{}
	once sync.Once
	wg   sync.WaitGroup

	ok, doomedFails, strayFails, doomed atomic.Int64

	mu     sync.Mutex
	open   map[int]*chaosConn // by local port
	doomAt map[int]bool       // ports doomed before their connection registered
	strays []string
}

type chaosConn struct{ doomed bool } // guarded by chaosLoad.mu

// startChaosLoad runs conns keep-alive connections sending GET path, each
// answer of which must be want, until stopAndWait, for at most limit.
func startChaosLoad(addr, path, want string, conns int, limit time.Duration) *chaosLoad {
	l := &chaosLoad{addr: addr, want: want, stop: make(chan struct{}), open: map[int]*chaosConn{}, doomAt: map[int]bool{}}
	deadline := time.Now().Add(limit)
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\n\r\n"
	for i := 0; i < conns; i++ {
		l.wg.Add(1)
		go l.run(req, deadline)
	}
	return l
}

// stopAndWait stops the load and waits for it; it may be called twice.
func (l *chaosLoad) stopAndWait() {
	l.once.Do(func() { close(l.stop) })
	l.wg.Wait()
}

// doom marks the open connections on ports as cut by a coming kill and
// returns how many there are.
func (l *chaosLoad) doom(ports map[int]bool) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p := range ports {
		if c := l.open[p]; c != nil {
			c.doomed = true
		} else {
			l.doomAt[p] = true // dialled, not yet registered
		}
	}
	l.doomed.Add(int64(len(ports)))
	return len(ports)
}

func (l *chaosLoad) register(port int) *chaosConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := &chaosConn{doomed: l.doomAt[port]}
	delete(l.doomAt, port)
	l.open[port] = c
	return c
}

// failed records a failure on the connection at port (0: a failed dial).
// A kill cuts a connection; it cannot make a wrong answer, so only an I/O
// error (cut) on a doomed connection is excused.
func (l *chaosLoad) failed(port int, c *chaosConn, cut bool, msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c != nil && c.doomed && cut {
		l.doomedFails.Add(1)
		return
	}
	l.strayFails.Add(1)
	if len(l.strays) < 5 {
		l.strays = append(l.strays, fmt.Sprintf("port %d: %s", port, msg))
	}
}

func (l *chaosLoad) unregister(port int) {
	l.mu.Lock()
	delete(l.open, port)
	l.mu.Unlock()
}

func (l *chaosLoad) run(req string, deadline time.Time) {
	defer l.wg.Done()
	for time.Now().Before(deadline) {
		select {
		case <-l.stop:
			return
		default:
		}
		nc, err := net.DialTimeout("tcp", l.addr, 2*time.Second)
		if err != nil {
			l.failed(0, nil, true, "dial: "+err.Error())
			time.Sleep(10 * time.Millisecond)
			continue
		}
		port := nc.LocalAddr().(*net.TCPAddr).Port
		l.serve(nc, port, l.register(port), req, deadline)
		l.unregister(port)
		_ = nc.Close()
	}
}

// serve sends requests on one connection until it fails, the server
// closes it, or the load stops.
func (l *chaosLoad) serve(nc net.Conn, port int, c *chaosConn, req string, deadline time.Time) {
	r := bufio.NewReader(nc)
	for time.Now().Before(deadline) {
		select {
		case <-l.stop:
			return
		default:
		}
		_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
		code, body, keep, err := fetch(nc, r, req)
		switch {
		case err != nil:
			l.failed(port, c, true, err.Error())
			return
		case code/100 != 2:
			l.failed(port, c, false, "status "+strconv.Itoa(code))
		case body != l.want:
			l.failed(port, c, false, fmt.Sprintf("wrong body %.80q", body))
		default:
			l.ok.Add(1)
		}
		if !keep {
			return
		}
	}
}

// fetch sends req and reads one response whole.
func fetch(nc net.Conn, r *bufio.Reader, req string) (code int, body string, keepAlive bool, err error) {
	if _, err := io.WriteString(nc, req); err != nil {
		return 0, "", false, fmt.Errorf("write: %w", err)
	}
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		return 0, "", false, fmt.Errorf("read: %w", err)
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return resp.StatusCode, "", false, fmt.Errorf("read body: %w", err)
	}
	return resp.StatusCode, string(b), !resp.Close, nil
}

func (l *chaosLoad) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprintf("%d ok, %d failed on connections of killed workers (%d such connections), %d other failures %v",
		l.ok.Load(), l.doomedFails.Load(), l.doomed.Load(), l.strayFails.Load(), l.strays)
}
