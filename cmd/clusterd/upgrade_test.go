package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/master"
)

// goBuild builds the package (or file) src into out with extra flags.
func goBuild(t *testing.T, out, src string, flags ...string) {
	t.Helper()
	args := append([]string{"build", "-o", out}, flags...)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), append(args, src)...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", src, err, b)
	}
}

// buildClusterd builds this command with its version set to v.
func buildClusterd(t *testing.T, dir, v string) string {
	t.Helper()
	out := filepath.Join(dir, "clusterd-"+v)
	goBuild(t, out, ".", "-ldflags", "-X main.version="+v)
	return out
}

// buildBroken builds a program that fails at start, as a bad build would.
func buildBroken(t *testing.T, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "broken.go")
	prog := "package main\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\nfunc main() {\n" +
		"\tfmt.Fprintln(os.Stderr, \"broken build: cannot load libfoo.so\")\n\tos.Exit(1)\n}\n"
	if err := os.WriteFile(src, []byte(prog), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "broken")
	goBuild(t, out, src)
	return out
}

// install puts src at dst as a package manager does: a copy beside dst,
// renamed over it, so that a process running dst keeps its own binary.
func install(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	tmp := dst + ".new"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func readPID(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("PID file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("PID file holds %q", b)
	}
	return pid
}

// exeVersion runs the very binary process pid runs (/proc/PID/exe, even
// if its file was replaced since) with "version".
func exeVersion(t *testing.T, pid int) string {
	t.Helper()
	out, err := exec.Command("/proc/"+strconv.Itoa(pid)+"/exe", "version").Output()
	if err != nil {
		t.Fatalf("version of pid %d: %v", pid, err)
	}
	return strings.TrimSpace(string(out))
}

// waitGone waits until pid has exited.
func waitGone(t *testing.T, pid int, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); alive(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("pid %d still running after %v", pid, d)
		}
	}
}

// stopByPIDFile stops the master the PID file names, unless it is first
// (the test's own child, which the harness stops).
func stopByPIDFile(t *testing.T, path string, first int) {
	b, err := os.ReadFile(path)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || pid == first || !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; alive(pid) && i < 500; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(pid) {
		t.Errorf("master %d did not stop on SIGTERM", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// running lists the processes running the binary at exe.
func running(exe string) []int {
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !alive(pid) {
			continue
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil && link == exe {
			out = append(out, pid)
		}
	}
	return out
}

// upgradeCluster starts a master of exe (a copy of a binary in a
// directory of the test's own) with a PID file, and stops whichever
// master serves at the end.
func upgradeCluster(t *testing.T, exe string, env []string, args ...string) (c *cluster, ctl, pidFile string) {
	t.Helper()
	dir := filepath.Dir(exe)
	ctl, pidFile = filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "pid")
	args = append([]string{"--workers", "2", "--control", ctl, "--pid-file", pidFile}, args...)
	c = startClusterExe(t, exe, 2, env, args...)
	first := c.cmd.Process.Pid
	t.Cleanup(func() { stopByPIDFile(t, pidFile, first) })
	if got := readPID(t, pidFile); got != first {
		t.Fatalf("PID file names %d, the master is %d", got, first)
	}
	return c, ctl, pidFile
}

// loadFor starts keep-alive load that the test's end stops, if it has not.
func loadFor(t *testing.T, c *cluster, conns int) (*load, func()) {
	l := startLoad(c.addr, "/", conns, 90*time.Second)
	stop := sync.OnceFunc(l.stopAndWait)
	t.Cleanup(stop)
	time.Sleep(300 * time.Millisecond)
	return l, stop
}

func checkLoad(t *testing.T, l *load) {
	t.Helper()
	t.Logf("load: %v", l)
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 || l.ok.Load() < 500 {
		t.Errorf("load during the upgrades: %v; want no errors, no non-2xx", l)
	}
}

// probeReady asks the admin server's /readyz, on a new connection each
// time, until stop is closed, and counts the answers that are not 200.
type probeReady struct {
	ok, bad atomic.Int64
	first   atomic.Value // the first bad answer
	stop    chan struct{}
	done    chan struct{}
}

func startProbe(addr string) *probeReady {
	p := &probeReady{stop: make(chan struct{}), done: make(chan struct{})}
	client := newConnClient()
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			resp, err := client.Get("http://" + addr + "/readyz")
			if err == nil {
				body, _ := io.ReadAll(resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode == 200 {
					p.ok.Add(1)
					continue
				}
				err = fmt.Errorf("%s: %d %q", time.Now().Format("15:04:05.000"), resp.StatusCode, body)
			}
			p.bad.Add(1)
			p.first.CompareAndSwap(nil, time.Now().Format("15:04:05.000000")+" "+err.Error())
		}
	}()
	return p
}

func (p *probeReady) stopAndWait() { close(p.stop); <-p.done }

// TestMasterUpgradeUnderLoad: under keep-alive load, two upgrades in a row,
// each to a different build, drop no request; each time the PID file
// names the new master, which runs the new build and answers ctl, and the
// old master exits. The admin server's /readyz, whose socket the masters
// share during the upgrade, answers 200 throughout.
func TestMasterUpgradeUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds clusterd three times")
	}
	bins := t.TempDir()
	builds := map[string]string{}
	for _, v := range []string{"upgrade-a", "upgrade-b", "upgrade-c"} {
		builds[v] = buildClusterd(t, bins, v)
	}
	for _, tc := range []struct {
		sched string
		conns int
	}{{"shared", 64}, {"shared", 256}, {"rr", 64}, {"reuseport", 64}, {"reuseport", 256}} {
		t.Run(fmt.Sprintf("%s/c%d", tc.sched, tc.conns), func(t *testing.T) {
			exe := filepath.Join(t.TempDir(), "clusterd")
			install(t, builds["upgrade-a"], exe)
			c, ctl, pidFile := upgradeCluster(t, exe, nil, "--sched", tc.sched, "--admin-listen", "127.0.0.1:0")
			admin := c.waitLog(5*time.Second, func(l map[string]any) bool { return l["@message"] == "admin listener" })["addr"].(string)
			// The admin server's snapshot trails the pool by up to 250ms.
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				resp, err := newConnClient().Get("http://" + admin + "/readyz")
				if err == nil {
					_ = resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz not 200 within 5s of the start: %v", err)
				}
			}
			probe := startProbe(admin)
			stopProbe := sync.OnceFunc(probe.stopAndWait)
			t.Cleanup(stopProbe)
			l, stopLoad := loadFor(t, c, tc.conns)
			prev := c.cmd.Process.Pid
			for i, v := range []string{"upgrade-b", "upgrade-c"} {
				install(t, builds[v], exe)
				code, out, errOut := ctlRun(t, ctl, "upgrade")
				if code != 0 {
					t.Fatalf("ctl upgrade to %s: exit %d: %s", v, code, errOut)
				}
				pid := readPID(t, pidFile)
				remember(pid)
				t.Logf("%s: %s", v, strings.TrimSpace(out))
				if pid == prev || !alive(pid) {
					t.Fatalf("after the upgrade the PID file names %d (before: %d, alive: %v)", pid, prev, alive(pid))
				}
				if got := exeVersion(t, pid); !strings.HasPrefix(got, "clusterd "+v+" ") {
					t.Errorf("master %d runs %q, want build %s", pid, got, v)
				}
				st := status(t, ctl)
				if st.Master.PID != pid || st.Master.Generation != i+1 {
					t.Errorf("ctl status: master %d generation %d, want %d generation %d", st.Master.PID, st.Master.Generation, pid, i+1)
				}
				waitGone(t, prev, 15*time.Second)
				prev = pid
				time.Sleep(300 * time.Millisecond)
			}
			stopLoad()
			checkLoad(t, l)
			stopProbe()
			t.Logf("/readyz: %d ok, %d not", probe.ok.Load(), probe.bad.Load())
			if probe.bad.Load() != 0 || probe.ok.Load() < 10 {
				t.Errorf("/readyz during the upgrades: %d ok, %d not (first: %v)", probe.ok.Load(), probe.bad.Load(), probe.first.Load())
			}
		})
	}
}

// TestMasterUpgradeFails: a new binary that fails its check, and one that
// passes it but exits at start, change nothing: ctl upgrade says why and
// exits 1, the old master and workers serve on without a failed request,
// and the PID file still names the old master (which removes it on stop).
func TestMasterUpgradeFails(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "clusterd")
	install(t, os.Args[0], exe)
	broken := buildBroken(t, t.TempDir())
	c, ctl, pidFile := upgradeCluster(t, exe, []string{envUpgradeFail + "=1"})
	first := c.cmd.Process.Pid
	workers := servingPids(t, ctl)
	l, stopLoad := loadFor(t, c, 64)
	for _, tc := range []struct {
		name, binary string
		want         *regexp.Regexp
	}{
		{"broken binary", broken, regexp.MustCompile(`failed its configuration check \(exit status 1\): broken build: cannot load libfoo\.so$`)},
		{"new master exits", os.Args[0], regexp.MustCompile(`the new master \(pid \d+\) exited during start-up \(exit status 1\)$`)},
	} {
		install(t, tc.binary, exe)
		code, _, errOut := ctlRun(t, ctl, "upgrade")
		if errOut = strings.TrimSpace(errOut); code != 1 || !tc.want.MatchString(errOut) {
			t.Errorf("%s: ctl upgrade: exit %d, %q; want 1 and %v", tc.name, code, errOut, tc.want)
		}
		if pid := readPID(t, pidFile); pid != first {
			t.Errorf("%s: PID file names %d, want the old master %d", tc.name, pid, first)
		}
		if got := servingPids(t, ctl); fmt.Sprint(got) != fmt.Sprint(workers) {
			t.Errorf("%s: serving workers %v, want the old ones %v", tc.name, got, workers)
		}
	}
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	checkLoad(t, l)
	c.signal(syscall.SIGTERM)
	if code := c.wait(15 * time.Second); code != 0 {
		t.Errorf("master exit %d", code)
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("PID file after stop: %v", err)
	}
}

// TestMasterUpgradeNeverReady: a new master whose workers never become
// ready is stopped, with its workers, after --ready-timeout; the old
// master serves on. While it runs, a second upgrade and a reload are
// refused.
func TestMasterUpgradeNeverReady(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "clusterd")
	install(t, os.Args[0], exe)
	c, ctl, pidFile := upgradeCluster(t, exe, []string{envSlowStart + "=60000"}, "--ready-timeout", "2s")
	first := c.cmd.Process.Pid
	workers := servingPids(t, ctl)
	l, stopLoad := loadFor(t, c, 64)

	type result struct {
		code   int
		errOut string
		took   time.Duration
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		var out, errOut bytes.Buffer
		code := run([]string{"ctl", "--control", ctl, "upgrade"}, &out, &errOut)
		done <- result{code, strings.TrimSpace(errOut.String()), time.Since(start)}
	}()
	started := c.waitLog(10*time.Second, func(l map[string]any) bool { return l["@message"] == "new master started" })
	newPid := int(started["pid"].(float64))
	remember(newPid)
	for _, cmd := range []string{"upgrade", "reload"} {
		if code, _, errOut := ctlRun(t, ctl, cmd); code != 1 || !strings.Contains(errOut, "a master upgrade is in progress") {
			t.Errorf("ctl %s during an upgrade: exit %d, %q; want it refused", cmd, code, errOut)
		}
	}
	r := <-done
	want := regexp.MustCompile(`the new master \(pid ` + strconv.Itoa(newPid) + `\) was not ready within 2s; killed it$`)
	if r.code != 1 || !want.MatchString(r.errOut) {
		t.Errorf("ctl upgrade: exit %d, %q; want 1 and %v", r.code, r.errOut, want)
	}
	if r.took < 2*time.Second || r.took > 10*time.Second {
		t.Errorf("ctl upgrade took %v; want about the 2s ready timeout", r.took)
	}
	if alive(newPid) {
		t.Errorf("the new master %d is still running", newPid)
	}
	// Only the old master and its two workers run the binary: the new
	// master's workers, stuck in start-up, were stopped with it.
	deadline := time.Now().Add(5 * time.Second)
	procs := running(exe)
	for len(procs) != 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		procs = running(exe)
	}
	if len(procs) != 3 {
		t.Errorf("processes running %s: %v; want the old master and its 2 workers", exe, procs)
	}
	if pid := readPID(t, pidFile); pid != first {
		t.Errorf("PID file names %d, want %d", pid, first)
	}
	if got := servingPids(t, ctl); fmt.Sprint(got) != fmt.Sprint(workers) {
		t.Errorf("serving workers %v, want the old ones %v", got, workers)
	}
	time.Sleep(300 * time.Millisecond)
	stopLoad()
	checkLoad(t, l)
}

// TestCheck: clusterd check accepts a good configuration and names the
// first problem of a bad one, on one line, without binding.
func TestCheck(t *testing.T) {
	busy := startCluster(t, 1, nil, "--workers", "1", "--control", ctlPath(t))
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--listen", busy.addr}, 0, "configuration ok"}, // in use: check binds nothing
		{[]string{"--listen", "unix:" + filepath.Join(t.TempDir(), "a.sock"), "--workers", "3"}, 0, "configuration ok"},
		{[]string{"--listen", "nowhere"}, 1, `clusterd check: --listen "nowhere": want host:port`},
		{[]string{"--listen", "unix:/no/such/dir/a.sock"}, 1, "clusterd check: --listen unix:/no/such/dir/a.sock: socket directory: stat /no/such/dir"},
		{[]string{"--root", "/no/such/root"}, 1, "clusterd check: --root: "},
		{[]string{"--workers", "0"}, 1, "clusterd check: --workers must be at least 1, got 0"},
		{[]string{"--group", "nogroup"}, 1, `clusterd check: workers' group "nogroup": a group needs a user too`},
		{[]string{"--bogus"}, 1, "clusterd check: flag provided but not defined: -bogus"},
	} {
		var out, errOut bytes.Buffer
		code := run(append([]string{"check"}, tc.args...), &out, &errOut)
		got := strings.TrimSpace(out.String() + errOut.String())
		if code != tc.code || !strings.HasPrefix(got, tc.want) || strings.Contains(got, "\n") {
			t.Errorf("check %v: exit %d, %q; want %d and %q…", tc.args, code, got, tc.code, tc.want)
		}
	}
	if os.Geteuid() == 0 {
		var errOut bytes.Buffer
		if code := run([]string{"check", "--user", "no-such-user-xyz"}, io.Discard, &errOut); code != 1 ||
			!strings.Contains(errOut.String(), `workers' user "no-such-user-xyz"`) {
			t.Errorf("check --user no-such-user-xyz: exit %d, %q", code, errOut.String())
		}
	}
}

// TestMasterUpgradeSignal: SIGUSR2 upgrades a master that serves a Unix
// socket too, under a service manager with a watchdog, after a scale: the
// old master tells the service manager MAINPID= and READY=1 and then
// nothing, the new master pings the watchdog, runs as many workers as the
// old one did, serves the same socket file and, when it stops, says
// STOPPING=1 and removes the socket, control and PID files.
func TestMasterUpgradeSignal(t *testing.T) {
	ns := listenNotify(t)
	dir := t.TempDir()
	exe := filepath.Join(dir, "clusterd")
	install(t, os.Args[0], exe)
	sock := filepath.Join(dir, "app.sock")
	ctl, pidFile := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "pid")
	// As systemd does, WATCHDOG_PID names the master: a shell that
	// sets it to its own pid and executes the master.
	cmd := exec.Command("/bin/sh", "-c", `WATCHDOG_PID=$$ exec "$0" "$@"`, exe, "--listen", "127.0.0.1:0",
		"--log-format", "json", "--log-level", "debug", "--listen", "unix:"+sock,
		"--workers", "2", "--control", ctl, "--pid-file", pidFile)
	cmd.Env = append(os.Environ(), envMain+"=1", "NOTIFY_SOCKET="+ns.path, "WATCHDOG_USEC=600000")
	c := startCmd(t, cmd, 2)
	old := c.cmd.Process.Pid
	t.Cleanup(func() { stopByPIDFile(t, pidFile, old) })
	var seen []notification
	if ready := ns.next(t, 10*time.Second, &seen); !ready.has("READY=1") || ready.pid != int32(old) {
		t.Fatalf("first notification %q from %d, want READY=1 from %d", ready.lines, ready.pid, old)
	}
	if code, _, errOut := ctlRun(t, ctl, "scale", "3"); code != 0 {
		t.Fatalf("ctl scale 3: %d %s", code, errOut)
	}
	c.waitReady(3, 10*time.Second)

	c.signal(syscall.SIGUSR2)
	handover := ns.next(t, 10*time.Second, &seen)
	newPid, _ := strconv.Atoi(handover.value("MAINPID"))
	remember(newPid)
	if handover.pid != int32(old) || !handover.has("READY=1") || newPid == old || !alive(newPid) {
		t.Fatalf("after SIGUSR2: %q from %d; want MAINPID=<new master> and READY=1 from %d", handover.lines, handover.pid, old)
	}
	waitGone(t, old, 15*time.Second)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if i := slices.IndexFunc(seen, func(n notification) bool { return n.has("WATCHDOG=1") && n.pid == int32(newPid) }); i >= 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no watchdog ping from the new master %d within 5s", newPid)
		}
		select {
		case n := <-ns.c:
			seen = append(seen, n)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if pid := readPID(t, pidFile); pid != newPid {
		t.Errorf("PID file names %d, want %d", pid, newPid)
	}
	st := status(t, ctl)
	if st.Master.PID != newPid || st.Master.Workers != 3 || len(servingPids(t, ctl)) != 3 {
		t.Errorf("new master %d: %d slots, %d serving; want pid %d, 3 and 3", st.Master.PID, st.Master.Workers, len(servingPids(t, ctl)), newPid)
	}
	client := unixClient(sock)
	resp, err := client.Get("http://clusterd/worker")
	if err != nil {
		t.Fatalf("GET /worker over %s: %v", sock, err)
	}
	_ = resp.Body.Close()
	client.CloseIdleConnections()
	if resp.StatusCode != 200 {
		t.Errorf("GET /worker over the Unix socket: %d", resp.StatusCode)
	}

	_ = syscall.Kill(newPid, syscall.SIGTERM)
	if stopping := ns.next(t, 10*time.Second, &seen); !stopping.has("STOPPING=1") || stopping.pid != int32(newPid) {
		t.Errorf("after SIGTERM: %q from %d, want STOPPING=1 from %d", stopping.lines, stopping.pid, newPid)
	}
	waitGone(t, newPid, 15*time.Second)
	drain(ns.c, &seen)
	after := false
	for _, msg := range seen {
		if after && msg.pid == int32(old) {
			t.Errorf("the old master spoke after the handover: %q", msg.lines)
		}
		after = after || msg.value("MAINPID") != ""
	}
	for _, f := range []string{sock, ctl, pidFile} {
		if _, err := os.Lstat(f); !os.IsNotExist(err) {
			t.Errorf("%s after the new master stopped: %v", f, err)
		}
	}
}

// TestMasterUpgradeConfigRejected: when the new binary rejects the
// configuration as it is now (the --root directory went away), the
// upgrade stops at the check and the old master serves on.
func TestMasterUpgradeConfigRejected(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "clusterd")
	install(t, os.Args[0], exe)
	root := filepath.Join(t.TempDir(), "www")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c, ctl, pidFile := upgradeCluster(t, exe, nil, "--root", root)
	if err := os.Rename(root, root+".moved"); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := ctlRun(t, ctl, "upgrade")
	want := "the new binary failed its configuration check (exit status 1): clusterd: --root: static root: open " + root + ": no such file or directory"
	if code != 1 || !strings.HasSuffix(strings.TrimSpace(errOut), want) {
		t.Errorf("ctl upgrade: exit %d, %q; want 1 and …%q", code, errOut, want)
	}
	if pid := readPID(t, pidFile); pid != c.cmd.Process.Pid {
		t.Errorf("PID file names %d, want %d", pid, c.cmd.Process.Pid)
	}
	if st := status(t, ctl); st.Master.PID != c.cmd.Process.Pid || st.Master.Upgrading {
		t.Errorf("status after a refused upgrade: %+v", st.Master)
	}
}

// TestMasterUpgradeSocketActivated: a master serving a socket from the
// service manager (LISTEN_FDS) hands it to the new master under the same
// --listen key, under load, with no failed request; neither the new
// master nor its workers see LISTEN_ or upgrade variables.
func TestMasterUpgradeSocketActivated(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	f, addr := tcpListenerFile(t)
	for _, tc := range []struct {
		name   string
		listen []string
	}{{"no --listen", nil}, {"by name", []string{"--listen", "systemd:web"}}} {
		t.Run(tc.name, func(t *testing.T) {
			ctl, pidFile := ctlPath(t), filepath.Join(t.TempDir(), "pid")
			c := activated(t, f, 2, append([]string{"--workers", "2", "--control", ctl, "--pid-file", pidFile}, tc.listen...)...)
			old := c.cmd.Process.Pid
			t.Cleanup(func() { stopByPIDFile(t, pidFile, old) })
			before := status(t, ctl).Master.Listeners
			l, stopLoad := loadFor(t, c, 64)
			if code, _, errOut := ctlRun(t, ctl, "upgrade"); code != 0 {
				t.Fatalf("ctl upgrade: exit %d: %s", code, errOut)
			}
			newPid := readPID(t, pidFile)
			remember(newPid)
			waitGone(t, old, 15*time.Second)
			time.Sleep(300 * time.Millisecond)
			stopLoad()
			checkLoad(t, l)
			st := status(t, ctl)
			if st.Master.PID != newPid || fmt.Sprint(st.Master.Listeners) != fmt.Sprint(before) {
				t.Errorf("new master %d listeners %+v; want %d with %+v", st.Master.PID, st.Master.Listeners, newPid, before)
			}
			for i, pid := range []int{newPid, st.Workers[0].PID, st.Workers[1].PID} {
				env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
				// The new master was started with the upgrade variable
				// (and removed it from its environment): only its
				// workers must not have it.
				if err != nil || strings.Contains(string(env), "LISTEN_") || i > 0 && strings.Contains(string(env), master.EnvUpgrade) {
					t.Errorf("environment of %d: %v %q", pid, err, env)
				}
			}
			if code, body, err := c.get(newConnClient(), "/"); err != nil || code != 200 || body != "Hello World\n" || c.addr != addr {
				t.Errorf("GET / on %s after the upgrade: %d %q %v", c.addr, code, body, err)
			}
		})
	}
}

// TestMasterUpgradePrivilegeDrop: a master started as root with --user
// nobody upgrades to a new master that is root too and whose workers run
// as nobody, serving the port below 1024 the old master bound.
func TestMasterUpgradePrivilegeDrop(t *testing.T) {
	uid, _ := nobody(t)
	exe, _ := publicCopy(t)
	addr := "127.0.0.1:" + strconv.Itoa(freePrivilegedPort(t))
	c, ctl, pidFile := upgradeCluster(t, exe, nil, "--user", "nobody", "--listen", addr)
	if code, _, errOut := ctlRun(t, ctl, "upgrade"); code != 0 {
		t.Fatalf("ctl upgrade: exit %d: %s", code, errOut)
	}
	newPid := readPID(t, pidFile)
	remember(newPid)
	waitGone(t, c.cmd.Process.Pid, 15*time.Second)
	if muid, _, _ := procIDs(t, newPid); muid != "0 0 0 0" {
		t.Errorf("new master: Uid %q, want root", muid)
	}
	want := fmt.Sprintf("%d %d %d %d", uid, uid, uid, uid)
	st := status(t, ctl)
	for _, w := range st.Workers {
		if wuid, _, groups := procIDs(t, w.PID); wuid != want || groups != "" {
			t.Errorf("new master's worker %d: Uid %q Groups %q; want %q and none", w.PID, wuid, groups, want)
		}
	}
	if len(st.Workers) != 2 || st.Master.PID != newPid {
		t.Errorf("status after the upgrade: master %d, %d workers", st.Master.PID, len(st.Workers))
	}
	resp, err := newConnClient().Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("GET / on %s: %v", addr, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("GET / on %s: %d", addr, resp.StatusCode)
	}
}

// TestMasterUpgradeOldMasterDies: when the old master dies (kill -9) while
// the new one starts, the new master takes over once its workers serve:
// it writes the PID file and answers the control socket.
func TestMasterUpgradeOldMasterDies(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "clusterd")
	install(t, os.Args[0], exe)
	c, ctl, pidFile := upgradeCluster(t, exe, []string{envSlowStart + "=1000"})
	old := c.cmd.Process.Pid
	done := make(chan int, 1)
	go func() { done <- run([]string{"ctl", "--control", ctl, "upgrade"}, io.Discard, io.Discard) }()
	started := c.waitLog(10*time.Second, func(l map[string]any) bool { return l["@message"] == "new master started" })
	newPid := int(started["pid"].(float64))
	remember(newPid)
	c.signal(syscall.SIGKILL)
	if code := <-done; code != 1 {
		t.Errorf("ctl upgrade whose master was killed: exit %d, want 1", code)
	}
	c.waitLog(10*time.Second, func(l map[string]any) bool {
		return l["@message"] == "upgrade committed: this master serves"
	})
	if pid := readPID(t, pidFile); pid != newPid {
		t.Errorf("PID file names %d, want the new master %d (the old was %d)", pid, newPid, old)
	}
	if st := status(t, ctl); st.Master.PID != newPid || len(servingPids(t, ctl)) != 2 {
		t.Errorf("status: master %d serving %v; want %d with 2 workers", st.Master.PID, servingPids(t, ctl), newPid)
	}
	if code, _, err := c.get(newConnClient(), "/"); err != nil || code != 200 {
		t.Errorf("GET / after the takeover: %d %v", code, err)
	}
}
