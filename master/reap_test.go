package master

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// procState is the state letter of pid ("Z" for a zombie), "" once it is gone.
func procState(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return ""
	}
	return s[i+2 : i+3]
}

func startExited(t *testing.T, code int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "exit "+strconv.Itoa(code))
	if err := cmd.Start(); err != nil {
		t.Skipf("no /bin/sh: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for procState(cmd.Process.Pid) != "Z" {
		if time.Now().After(deadline) {
			t.Fatalf("child %d did not exit", cmd.Process.Pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return cmd
}

// TestReapOrphansSparesWorkers: the reaper reaps an exited child that is
// not a worker, and leaves a worker's exit status to its exec.Cmd.Wait.
func TestReapOrphansSparesWorkers(t *testing.T) {
	orphan := startExited(t, 3)
	work := startExited(t, 7)
	m := &Master{pid1: true, log: hclog.NewNullLogger(),
		workers: map[*worker]struct{}{{pid: work.Process.Pid}: {}}}
	m.reapOrphans()
	if s := procState(orphan.Process.Pid); s != "" {
		t.Errorf("orphan %d: state %q after reaping, want gone", orphan.Process.Pid, s)
	}
	if err := work.Wait(); work.ProcessState == nil || work.ProcessState.ExitCode() != 7 {
		t.Errorf("worker's Wait: %v, want exit status 7", err)
	}
	_ = orphan.Wait() // already reaped: an error, and no zombie

	// Not PID 1: nothing is reaped.
	other := startExited(t, 0)
	(&Master{log: hclog.NewNullLogger()}).reapOrphans()
	if err := other.Wait(); err != nil {
		t.Errorf("a master that is not PID 1 reaped a child: %v", err)
	}
}
