package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/master"
)

// shortDir is a temporary directory with a short path: a socket path must
// fit in the kernel's 108 bytes.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// unixClient sends every request over a new connection to the socket at path.
func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

func getBody(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %q %v", url, resp.StatusCode, b, err)
	}
	return string(b)
}

// mainCmd is the clusterd binary (this test binary) with args.
func mainCmd(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	return cmd
}

// failStart runs a master that must fail to start, and returns its exit
// code and its stderr.
func failStart(t *testing.T, cmd *exec.Cmd) (int, string) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	remember(cmd.Process.Pid)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("master did not fail; stderr:\n%s", stderr.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// wantOneLineError checks a failed start: exit 1 and one line naming why.
func wantOneLineError(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code != 1 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Errorf("got exit %d, stderr %q; want exit 1 and one line with %q", code, stderr, want)
	}
}

func findListener(t *testing.T, st master.Status, listen string) master.ListenerStatus {
	t.Helper()
	for _, l := range st.Master.Listeners {
		if l.Listen == listen {
			return l
		}
	}
	t.Fatalf("no listener %q in %+v", listen, st.Master.Listeners)
	return master.ListenerStatus{}
}

// TestUnixSocketServes: workers serve a Unix socket the master creates,
// with the configured mode, in both scheduling modes, and an abstract one;
// ctl status lists it; a rolling restart keeps the file; a graceful stop
// removes it.
func TestUnixSocketServes(t *testing.T) {
	for _, tc := range []struct {
		name, sched string
		abstract    bool
		mode        []string
		want        os.FileMode
	}{
		{"shared", "shared", false, nil, 0o660},
		{"rr", "rr", false, []string{"--socket-mode", "0600"}, 0o600},
		{"abstract", "shared", true, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := shortDir(t)
			sock, form := filepath.Join(dir, "app.sock"), master.FormUnix
			if tc.abstract {
				sock, form = "@clusterd-test-"+filepath.Base(dir), master.FormAbstract
			}
			path := ctlPath(t)
			args := append([]string{"--workers", "2", "--control", path, "--sched", tc.sched, "--listen", "unix:" + sock}, tc.mode...)
			c := startCluster(t, 2, nil, args...)
			client := unixClient(sock)
			if got := getBody(t, client, "http://x/"); got != "Hello World\n" {
				t.Fatalf("GET /: %q", got)
			}
			var fi os.FileInfo
			if !tc.abstract {
				var err error
				fi, err = os.Lstat(sock)
				if err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != tc.want {
					t.Fatalf("socket file: %v %v, want a socket with mode %v", fi.Mode(), err, tc.want)
				}
			}
			l := findListener(t, status(t, path), "unix:"+sock)
			if l.Form != form || l.Addr != sock || l.Backlog != master.DefaultBacklog {
				t.Errorf("status: %+v", l)
			}
			_, text, _ := ctlRun(t, path, "status")
			if !strings.Contains(text, "unix:"+sock+"  "+form+" ") || !strings.Contains(text, "  511\n") {
				t.Errorf("ctl status does not list the listener:\n%s", text)
			}
			if code, _, errOut := ctlRun(t, path, "reload"); code != 0 {
				t.Fatalf("reload: %s", errOut)
			}
			if !tc.abstract {
				after, err := os.Lstat(sock)
				if err != nil || !os.SameFile(fi, after) {
					t.Fatalf("the socket file changed across a rolling restart: %v", err)
				}
			}
			for i := 0; i < 4; i++ {
				getBody(t, client, "http://x/")
			}
			if code, _, errOut := ctlRun(t, path, "stop"); code != 0 {
				t.Fatalf("stop: %s", errOut)
			}
			if code := c.wait(10 * time.Second); code != 0 {
				t.Fatalf("master exit %d", code)
			}
			if _, err := os.Lstat(sock); !tc.abstract && !os.IsNotExist(err) {
				t.Errorf("socket file left after stop: %v", err)
			}
		})
	}
}

// TestUnixSocketStaleAfterKill: the socket file of a master killed with
// SIGKILL stays; the next master replaces it and serves.
func TestUnixSocketStaleAfterKill(t *testing.T) {
	sock := filepath.Join(shortDir(t), "app.sock")
	path := ctlPath(t)
	args := []string{"--workers", "1", "--control", path, "--listen", "unix:" + sock}
	c := startCluster(t, 1, nil, args...)
	pids := c.livePids()
	c.signal(syscall.SIGKILL)
	c.wait(5 * time.Second)
	waitFor(t, 5*time.Second, func() bool { // orphaned workers close their copies
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket left by the killed master: %v", err)
	}
	startCluster(t, 1, nil, args...)
	if got := getBody(t, unixClient(sock), "http://x/"); got != "Hello World\n" {
		t.Fatalf("GET /: %q", got)
	}
}

// staleSocket leaves a socket file at path that no one listens on.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	_ = ln.Close()
}

// TestUnixSocketRefused: a path the master cannot own safely is refused
// with one line and exit 1, and is left as it was.
func TestUnixSocketRefused(t *testing.T) {
	const nobody = 65534
	root := os.Geteuid() == 0
	for _, tc := range []struct {
		name     string
		rootOnly bool
		prepare  func(t *testing.T, dir string) (listen string)
		want     string
	}{
		{"live socket", false, func(t *testing.T, dir string) string {
			ln, err := net.Listen("unix", dir+"/app.sock")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return "unix:" + dir + "/app.sock"
		}, "a server is listening on"},
		{"regular file", false, func(t *testing.T, dir string) string {
			if err := os.WriteFile(dir+"/app.sock", []byte("data"), 0o600); err != nil {
				t.Fatal(err)
			}
			return "unix:" + dir + "/app.sock"
		}, "exists and is not a socket"},
		{"directory", false, func(t *testing.T, dir string) string {
			return "unix:" + dir
		}, "exists and is not a socket"},
		{"world-writable directory", false, func(t *testing.T, dir string) string {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
			return "unix:" + dir + "/app.sock"
		}, "is writable by every user and not sticky"},
		{"another user's stale socket", true, func(t *testing.T, dir string) string {
			staleSocket(t, dir+"/app.sock")
			if err := os.Lchown(dir+"/app.sock", nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return "unix:" + dir + "/app.sock"
		}, "belongs to uid 65534, not to this user"},
		{"another user's directory", true, func(t *testing.T, dir string) string {
			if err := os.Chown(dir, nobody, nobody); err != nil {
				t.Fatal(err)
			}
			return "unix:" + dir + "/app.sock"
		}, "belongs to uid 65534, not to this user (uid 0) or root"},
		{"abstract name in use", false, func(t *testing.T, dir string) string {
			name := "@clusterd-test-" + filepath.Base(dir)
			ln, err := net.Listen("unix", name)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			return "unix:" + name
		}, "is in use by another process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootOnly && !root {
				t.Skip("needs root to make a file another user's")
			}
			dir := filepath.Join(shortDir(t), "d")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			listen := tc.prepare(t, dir)
			var before []os.DirEntry
			before, _ = os.ReadDir(dir)
			code, stderr := failStart(t, mainCmd("--listen", listen, "--workers", "1", "--control", ctlPath(t)))
			wantOneLineError(t, code, stderr, tc.want)
			after, _ := os.ReadDir(dir)
			if len(after) != len(before) {
				t.Errorf("directory changed: %v → %v", before, after)
			}
		})
	}
}

// TestUnixSocketStaleReplaced: a stale socket of this user's is replaced.
func TestUnixSocketStaleReplaced(t *testing.T) {
	sock := filepath.Join(shortDir(t), "app.sock")
	staleSocket(t, sock)
	startCluster(t, 1, nil, "--workers", "1", "--control", ctlPath(t), "--listen", "unix:"+sock)
	if got := getBody(t, unixClient(sock), "http://x/"); got != "Hello World\n" {
		t.Fatalf("GET /: %q", got)
	}
}
