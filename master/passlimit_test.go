package master

import (
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/ipc"
)

// envPassLimit makes the test binary run TestPassAtDescriptorLimit's
// body: it fills its own descriptor table, which no other test may share.
const envPassLimit = "CLUSTERD_MASTER_TEST_PASS_LIMIT"

// TestPassAtDescriptorLimit: connections a worker passes while the
// master's descriptor table is full do not arrive (recvmsg truncates
// them); the master says so to the worker, which kept its copies and
// serves them again, logs why and counts them. With room again, a pass
// is answered as taken and handed out as idle connections.
func TestPassAtDescriptorLimit(t *testing.T) {
	if os.Getenv(envPassLimit) != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPassAtDescriptorLimit$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), envPassLimit+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestPassAtDescriptorLimit") {
			t.Fatalf("re-executed test: %v\n%s", err, out)
		}
		return
	}
	h, _ := rpHarness(t, 1)
	p := h.proc(0)
	h.rpQuery(p)
	h.ready(p)

	// conn returns a connection for the worker to give away: one end of
	// a socket pair, closed when the test ends (a real worker keeps its
	// copy until the master answers).
	conn := func() *os.File {
		t.Helper()
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		given, kept := os.NewFile(uintptr(fds[0]), "given"), os.NewFile(uintptr(fds[1]), "kept")
		t.Cleanup(func() { _ = given.Close(); _ = kept.Close() })
		return given
	}
	send := func(seq uint64, given *os.File) {
		t.Helper()
		if err := p.conn.Send(ipc.Message{Type: ipc.Pass, Seq: seq}, given); err != nil {
			t.Fatal(err)
		}
	}
	first := conn()

	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	const limit = 512
	if old.Cur < limit {
		t.Skipf("RLIMIT_NOFILE %d, want at least %d", old.Cur, limit)
	}
	lim := syscall.Rlimit{Cur: limit, Max: old.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	var fillers []int
	release := func() {
		for _, fd := range fillers {
			_ = unix.Close(fd)
		}
		fillers = nil
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	}
	defer release()
	for {
		fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
		if err == unix.EMFILE {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		fillers = append(fillers, fd)
	}
	send(1, first)
	msg, files := p.recv(t)
	closeFiles(files)
	release()
	if msg.Type != ipc.PassReply || msg.Seq != 1 || msg.Err == "" {
		t.Fatalf("worker got %+v, want a PassReply refusing pass 1", msg)
	}
	if n := h.m.stats.passRefused.Load(); n != 1 {
		t.Errorf("passRefused = %d, want 1", n)
	}
	if !h.logged("could not receive the connections a worker gave away") {
		t.Error("the refused pass was not logged")
	}
	if n := h.m.rr.held.Load(); n != 0 {
		t.Errorf("the master holds %d connections, want 0", n)
	}

	// With room again: taken, then handed out as idle.
	send(2, conn())
	msg, files = p.recv(t)
	closeFiles(files)
	if msg.Type != ipc.PassReply || msg.Seq != 2 || msg.Err != "" {
		t.Fatalf("worker got %+v, want a PassReply taking pass 2", msg)
	}
	h.until(func() bool { return len(h.m.rr.pending) == 1 })
	msg, files = p.recv(t)
	closeFiles(files)
	if msg.Type != ipc.Handoff || !msg.Idle || len(files) != 1 {
		t.Fatalf("worker got %v with %d fds (idle %v), want an idle hand-off of 1", msg.Type, len(files), msg.Idle)
	}
	p.send(t, ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq})
	h.until(func() bool { return len(h.m.rr.pending) == 0 && h.m.rr.held.Load() == 0 })
}
