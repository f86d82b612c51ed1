package main

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// envGroups makes a test master start with these supplementary groups
// (comma-separated gids), so that a test can see its workers lose them.
const envGroups = "CLUSTERD_TEST_GROUPS"

func setGroupsFromEnv() error {
	v := os.Getenv(envGroups)
	if v == "" || os.Getenv(ipc.EnvWorkerID) != "" {
		return nil
	}
	var gids []int
	for _, f := range strings.Split(v, ",") {
		g, err := strconv.Atoi(f)
		if err != nil {
			return fmt.Errorf("%s: %w", envGroups, err)
		}
		gids = append(gids, g)
	}
	return syscall.Setgroups(gids)
}

// publicCopy copies the test binary into a fresh directory that every
// user may enter, so that workers running as another user can execute it.
func publicCopy(t *testing.T) (exe, dir string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "clusterd-priv")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	exe = filepath.Join(dir, "clusterd")
	dst, err := os.OpenFile(exe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(dst, src)
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return exe, dir
}

// freePrivilegedPort finds a loopback port below 1024 that no one listens
// on: 80 if it is free.
func freePrivilegedPort(t *testing.T) int {
	t.Helper()
	for i, port := 0, 80; i < 50; i, port = i+1, 600+rand.IntN(424) {
		if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port)); err == nil {
			_ = ln.Close()
			return port
		}
	}
	t.Skip("no free port below 1024 on 127.0.0.1")
	return 0
}

// procIDs returns the Uid, Gid and Groups lines of /proc/PID/status.
func procIDs(t *testing.T, pid int) (uid, gid, groups string) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.Join(strings.Fields(v), " ")
		switch k {
		case "Uid":
			uid = v
		case "Gid":
			gid = v
		case "Groups":
			groups = v
		}
	}
	return uid, gid, groups
}

// runAs runs the test binary's clusterd with args as uid/gid and returns
// its exit code and output.
func runAs(t *testing.T, exe string, uid, gid uint32, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envMain+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
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
		t.Fatalf("%v as uid %d still running after 10s: %s", args, uid, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

func nobody(t *testing.T) (uid, gid uint32) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	id, _ := strconv.Atoi(u.Uid)
	g, _ := strconv.Atoi(u.Gid)
	return uint32(id), uint32(g)
}

// TestPrivilegeDrop: a master started as root with --user nobody binds a
// port below 1024 and serves it from workers that run as nobody with no
// supplementary groups, which cannot read a file only root may; the
// control socket admits root and nobody, and no other user.
func TestPrivilegeDrop(t *testing.T) {
	uid, gid := nobody(t)
	exe, dir := publicCopy(t)
	docs := filepath.Join(dir, "docs")
	if err := os.Mkdir(docs, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, mode := range map[string]os.FileMode{"public.txt": 0o644, "secret.txt": 0o600} {
		if err := os.WriteFile(filepath.Join(docs, name), []byte(name+"\n"), mode); err != nil {
			t.Fatal(err)
		}
		_ = os.Chmod(filepath.Join(docs, name), mode)
	}
	port := freePrivilegedPort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	ctl := filepath.Join(dir, "ctl.sock")
	sock := filepath.Join(dir, "app.sock")
	c := startClusterExe(t, exe, 2, []string{envGroups + "=4,27"}, "--workers", "2", "--user", "nobody",
		"--listen", addr, "--listen", "unix:"+sock, "--root", docs, "--control", ctl)
	if fi, err := os.Stat(sock); err != nil {
		t.Error(err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid || st.Gid != gid {
		t.Errorf("unix socket owned by %d:%d, want the workers' user %d:%d", st.Uid, st.Gid, uid, gid)
	}

	if muid, _, mgroups := procIDs(t, c.cmd.Process.Pid); muid != "0 0 0 0" || mgroups != "4 27" {
		t.Fatalf("master: Uid %q, Groups %q; want root with groups 4 27 (the test's set-up)", muid, mgroups)
	}
	want := fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid)
	wantGid := fmt.Sprintf("%d %d %d %d", gid, gid, gid, gid)
	for id, pid := range c.waitReady(2, 10*time.Second) {
		wuid, wgid, groups := procIDs(t, pid)
		if wuid != want || wgid != wantGid || groups != "" {
			t.Errorf("worker %d (pid %d): Uid %q Gid %q Groups %q; want Uid %q Gid %q and no groups",
				id, pid, wuid, wgid, groups, want, wantGid)
		}
	}

	client := newConnClient()
	for path, wantCode := range map[string]int{"/public.txt": 200, "/secret.txt": 403} {
		resp, err := client.Get("http://" + addr + path)
		if err != nil {
			t.Fatalf("GET %s on port %d: %v", path, port, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != wantCode {
			t.Errorf("GET %s: %d %q, want %d", path, resp.StatusCode, body, wantCode)
		}
		if path == "/secret.txt" && strings.Contains(string(body), "secret.txt") {
			t.Errorf("GET /secret.txt revealed the file: %q", body)
		}
	}

	fi, err := os.Stat(ctl)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || st.Gid != gid || fi.Mode().Perm() != 0o660 {
		t.Errorf("control socket: owner %d:%d, mode %v; want 0:%d, 0660", st.Uid, st.Gid, fi.Mode().Perm(), gid)
	}
	if code, _, errOut := ctlRun(t, ctl, "status"); code != 0 {
		t.Errorf("ctl status as root: %d %s", code, errOut)
	}
	if code, out := runAs(t, exe, uid, gid, "ctl", "--control", ctl, "status"); code != 0 || !strings.Contains(out, "master pid") {
		t.Errorf("ctl status as nobody: %d %s", code, out)
	}
	// Another user: the socket's mode refuses it, and so does the
	// master's peer check when the mode would not.
	code, out := runAs(t, exe, 12345, 12345, "ctl", "--control", ctl, "status")
	if code == 0 || !strings.Contains(out, "permission denied: run ctl as root or as the user the master admits") {
		t.Errorf("ctl status as uid 12345: %d %q; want permission denied", code, out)
	}
	if err := os.Chmod(ctl, 0o666); err != nil {
		t.Fatal(err)
	}
	code, out = runAs(t, exe, 12345, 12345, "ctl", "--control", ctl, "status")
	if code == 0 || !strings.Contains(out, "uid 12345 may not control this master") {
		t.Errorf("ctl status as uid 12345 through a 0666 socket: %d %q; want refused", code, out)
	}
	c.signal(syscall.SIGTERM)
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("master exit code %d", code)
	}
}

// TestPrivilegeDropErrors: --user needs root and a user that exists;
// either mistake is one line and a non-zero exit, before anything binds.
func TestPrivilegeDropErrors(t *testing.T) {
	uid, gid := nobody(t)
	exe, _ := publicCopy(t)
	for _, tc := range []struct {
		name     string
		uid, gid uint32
		args     []string
		want     string
	}{
		{"unknown user", 0, 0, []string{"--user", "no-such-user-x"}, `workers' user "no-such-user-x": user: unknown user no-such-user-x`},
		{"unknown group", 0, 0, []string{"--user", "nobody", "--group", "no-such-group-x"}, `workers' group "no-such-group-x": group: unknown group no-such-group-x`},
		{"group without user", 0, 0, []string{"--group", "nogroup"}, `a group needs a user too`},
		{"not root", uid, gid, []string{"--user", "nobody"}, fmt.Sprintf("only a master started as root can run workers as another user (this one runs as uid %d)", uid)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runAs(t, exe, tc.uid, tc.gid, append([]string{"--listen", "127.0.0.1:0"}, tc.args...)...)
			if code != 1 || !strings.Contains(out, tc.want) || strings.Count(strings.TrimSpace(out), "\n") != 0 {
				t.Errorf("exit %d, output %q; want exit 1 and one line with %q", code, out, tc.want)
			}
		})
	}
}
