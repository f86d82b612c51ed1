package main

import (
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/master"
)

// tcpListenerFile returns a listening socket on 127.0.0.1 as a file to
// pass to a child, and its address.
func tcpListenerFile(t *testing.T) (*os.File, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, ln.Addr().String()
}

// ssBacklog returns the accept queue length ss reports for the listener
// on addr, or "" when ss is not installed.
func ssBacklog(t *testing.T, addr string) string {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		return ""
	}
	out, err := exec.Command("ss", "-ltnH", "src", addr).Output()
	f := strings.Fields(string(out))
	if err != nil || len(f) < 3 {
		t.Fatalf("ss -ltnH src %s: %q %v", addr, out, err)
	}
	return f[2] // State Recv-Q Send-Q: for a listener, Send-Q is the backlog
}

// TestListenFD: --listen fd:3 serves a listening socket inherited from
// the parent, keeping its backlog unless --backlog is given.
func TestListenFD(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		backlog int
	}{
		{"inherited backlog", nil, 0},
		{"--backlog 64", []string{"--backlog", "64"}, 64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, addr := tcpListenerFile(t)
			path := ctlPath(t)
			cmd := mainCmd(append([]string{"--listen", "fd:3", "--workers", "1", "--control", path,
				"--log-format", "json", "--log-level", "debug"}, tc.args...)...)
			cmd.ExtraFiles = []*os.File{f}
			c := startCmd(t, cmd, 1)
			if c.addr != addr {
				t.Errorf("listening on %s, the inherited socket is %s", c.addr, addr)
			}
			if code, body, err := c.get(newConnClient(), "/"); err != nil || code != 200 || body != "Hello World\n" {
				t.Fatalf("GET /: %d %q %v", code, body, err)
			}
			l := findListener(t, status(t, path), "fd:3")
			if l.Form != master.FormFD || l.Addr != addr || l.Backlog != tc.backlog {
				t.Errorf("status: %+v", l)
			}
			if got := ssBacklog(t, addr); tc.backlog > 0 && got != "" && got != strconv.Itoa(tc.backlog) {
				t.Errorf("ss shows backlog %s, want %d", got, tc.backlog)
			}
		})
	}
}

// TestListenFDRefused: an inherited descriptor that is not a listening
// stream socket is refused with one line and exit 1.
func TestListenFDRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		file func(t *testing.T) *os.File
		fd   string
		want string
	}{
		{"UDP socket", func(t *testing.T) *os.File {
			pc, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			f, err := pc.(*net.UDPConn).File()
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "3", "descriptor 3: a datagram (SOCK_DGRAM, e.g. UDP) socket, not a stream socket"},
		{"bound, not listening", func(t *testing.T) *os.File {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
				t.Fatal(err)
			}
			return os.NewFile(uintptr(fd), "bound")
		}, "3", "descriptor 3: a stream socket that is not listening"},
		{"connected socket", func(t *testing.T) *os.File {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			f, err := c.(*net.TCPConn).File()
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "3", "descriptor 3: a stream socket that is not listening"},
		{"regular file", func(t *testing.T) *os.File {
			f, err := os.Open(os.Args[0])
			if err != nil {
				t.Fatal(err)
			}
			return f
		}, "3", "descriptor 3: not a socket"},
		{"closed descriptor", nil, "200", "descriptor 200: not an open descriptor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := mainCmd("--listen", "fd:"+tc.fd, "--workers", "1", "--control", ctlPath(t))
			if tc.file != nil {
				f := tc.file(t)
				defer f.Close()
				cmd.ExtraFiles = []*os.File{f}
			}
			code, stderr := failStart(t, cmd)
			wantOneLineError(t, code, stderr, tc.want)
		})
	}
}

// TestBacklog: every listener the master creates gets the backlog, 511
// unless --backlog says otherwise; status and the kernel (ss) agree.
func TestBacklog(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, 511},
		{[]string{"--backlog", "77"}, 77},
	} {
		t.Run(strconv.Itoa(tc.want), func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 1, nil, append([]string{"--workers", "1", "--control", path}, tc.args...)...)
			if l := findListener(t, status(t, path), "127.0.0.1:0"); l.Backlog != tc.want || l.Addr != c.addr {
				t.Errorf("status: %+v, want backlog %d", l, tc.want)
			}
			if got := ssBacklog(t, c.addr); got != "" && got != strconv.Itoa(tc.want) {
				t.Errorf("ss shows backlog %s, want %d", got, tc.want)
			}
		})
	}
}

// TestTCPDeferAccept: with --tcp-defer-accept a connection that sends
// nothing never reaches a worker (its open-connection count stays 0 across
// heartbeats), and is served as soon as it sends a request; without it the
// same connection is accepted at once.
func TestTCPDeferAccept(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		idle int64 // worker connections while the client is silent
	}{
		{"deferred", []string{"--tcp-defer-accept"}, 0},
		{"default", nil, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 1, nil, append([]string{"--workers", "1", "--control", path}, tc.args...)...)
			conn, err := net.Dial("tcp", c.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conns := func() int64 { return status(t, path).Workers[0].Connections }
			// Heartbeats come every second: over 2.5s at least two report.
			deadline := time.Now().Add(2500 * time.Millisecond)
			for time.Now().Before(deadline) && (tc.idle == 0 || conns() != tc.idle) {
				if n := conns(); tc.idle == 0 && n != 0 {
					t.Fatalf("a silent connection reached the worker: %d open", n)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if n := conns(); n != tc.idle {
				t.Fatalf("worker has %d connections open, want %d", n, tc.idle)
			}
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(conn)
			if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") || !strings.HasSuffix(string(b), "Hello World\n") {
				t.Fatalf("request on the silent connection: %q %v", b, err)
			}
		})
	}
}

// activated starts a master the way a service manager does: the listening
// socket f as fd 3, LISTEN_FDS=1, LISTEN_FDNAMES=web, and LISTEN_PID set
// to the master's own pid by a shell that then executes it.
func activated(t *testing.T, f *os.File, want int, args ...string) *cluster {
	t.Helper()
	sh := append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0],
		"--log-format", "json", "--log-level", "debug"}, args...)
	cmd := exec.Command("/bin/sh", sh...)
	cmd.Env = append(os.Environ(), envMain+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
	cmd.ExtraFiles = []*os.File{f}
	return startCmd(t, cmd, want)
}

// TestSocketActivation: a master given a socket by its service manager
// serves it instead of binding, whether --listen names it by name, by its
// address, or not at all; its workers do not see LISTEN_FDS.
func TestSocketActivation(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	f, addr := tcpListenerFile(t)
	for _, tc := range []struct {
		name   string
		listen []string
		key    string
	}{
		{"no --listen", nil, "fd:3"},
		{"by name", []string{"--listen", "systemd:web"}, "fd:3"},
		{"by address", []string{"--listen", addr}, addr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ctlPath(t)
			c := activated(t, f, 1, append([]string{"--workers", "1", "--control", path}, tc.listen...)...)
			if code, body, err := c.get(newConnClient(), "/"); err != nil || code != 200 || body != "Hello World\n" || c.addr != addr {
				t.Fatalf("GET / on %s: %d %q %v", c.addr, code, body, err)
			}
			st := status(t, path)
			if l := findListener(t, st, tc.key); l.Form != master.FormSystemd || l.Addr != addr || len(st.Master.Listeners) != 1 {
				t.Errorf("status: %+v", st.Master.Listeners)
			}
			env, err := os.ReadFile("/proc/" + strconv.Itoa(st.Workers[0].PID) + "/environ")
			if err != nil || strings.Contains(string(env), "LISTEN_") {
				t.Errorf("worker environment: %v %q", err, env)
			}
			if code, _, errOut := ctlRun(t, path, "stop"); code != 0 {
				t.Fatalf("stop: %s", errOut)
			}
			c.wait(10 * time.Second)
		})
	}
	t.Run("unknown name", func(t *testing.T) {
		sh := []string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, os.Args[0], "--listen", "systemd:api", "--control", ctlPath(t)}
		cmd := exec.Command("/bin/sh", sh...)
		cmd.Env = append(os.Environ(), envMain+"=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=web")
		cmd.ExtraFiles = []*os.File{f}
		code, stderr := failStart(t, cmd)
		wantOneLineError(t, code, stderr, `no socket named "api" was passed by the service manager (it passed "web")`)
	})
}

// TestSocketActivationRestart plays the service manager across a crash:
// it keeps the listening socket while the master is killed with SIGKILL,
// clients connect and send requests while no master runs, and the next
// master serves every one of them: none is refused.
func TestSocketActivationRestart(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	f, addr := tcpListenerFile(t)
	c := activated(t, f, 1, "--workers", "1", "--control", ctlPath(t))
	pids := c.livePids()
	c.signal(syscall.SIGKILL)
	c.wait(5 * time.Second)
	waitFor(t, 5*time.Second, func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	const n = 8
	var conns []net.Conn
	for i := 0; i < n; i++ {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d while no master ran: %v", i, err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	activated(t, f, 1, "--workers", "1", "--control", ctlPath(t))
	for i, conn := range conns {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(conn)
		if err != nil || !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			t.Errorf("connection %d made while no master ran: %q %v", i, b, err)
		}
	}
}
