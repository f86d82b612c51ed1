package master

import (
	"bytes"
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A master running as PID 1 (in a container, with no init) inherits every
// orphaned process in its PID namespace, and must reap them, or their
// zombies pile up. It must not reap its own workers, whose exit statuses
// belong to their watchers (exec.Cmd.Wait): so it looks at an exited
// child without reaping it (waitid WNOWAIT), and reaps it (wait4 on its
// pid) only when it is not a worker. The supervisor does this on SIGCHLD
// and on every tick, so m.workers is never stale: a worker is recorded on
// the supervisor goroutine before it can be looked at here.
//
// A program embedding the master that starts children of its own, and
// runs as PID 1, should run under an init (podman run --init) instead.

// reapOrphans reaps the exited children that are not workers, when the
// master is PID 1.
func (m *Master) reapOrphans() {
	if !m.pid1 {
		return
	}
	for range 128 { // bounded: more zombies wait for the next tick
		pid, err := exitedChild()
		if err != nil || pid <= 0 {
			return
		}
		if m.isWorker(pid) {
			// Its watcher reaps it soon; waitid shows no one behind it,
			// so look for the others in /proc.
			for _, z := range zombieChildren() {
				if !m.isWorker(z) {
					m.reap(z)
				}
			}
			return
		}
		m.reap(pid)
	}
}

// reap reaps pid, a child that is not a worker.
func (m *Master) reap(pid int) {
	var ws unix.WaitStatus
	if got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil); err == nil && got == pid {
		m.log.Debug("reaped orphan", "pid", pid, "status", waitStatus(ws))
	}
}

// zombieChildren lists this process's exited, unreaped children; none
// when /proc belongs to another PID namespace, whose numbers wait4 would
// misread.
func zombieChildren() []int {
	self, err := os.Readlink("/proc/self")
	if err != nil || self != strconv.Itoa(os.Getpid()) {
		return nil
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) >= 2 && f[0] == "Z" && f[1] == self {
			out = append(out, pid)
		}
	}
	return out
}

// isWorker reports whether pid is a worker, or a new master being
// started for an upgrade, whose exit status is its watcher's.
func (m *Master) isWorker(pid int) bool {
	if m.upgrade != nil && m.upgrade.pid == pid {
		return true
	}
	for w := range m.workers {
		if w.pid == pid {
			return true
		}
	}
	return false
}

// exitedChild returns the pid of a child that has exited and is not yet
// reaped, leaving it so (WNOWAIT); 0 if there is none.
func exitedChild() (int, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			return 0, nil
		}
		if err != nil {
			return 0, os.NewSyscallError("waitid", err)
		}
		return siginfoPid(&info), nil
	}
}

// siginfoPid reads si_pid: after si_signo, si_errno and si_code, at the
// start of the union, which is aligned to a pointer.
func siginfoPid(info *unix.Siginfo) int {
	raw := (*[unsafe.Sizeof(*info)]byte)(unsafe.Pointer(info))
	off := (3*4 + unsafe.Sizeof(uintptr(0)) - 1) &^ (unsafe.Sizeof(uintptr(0)) - 1)
	return int(int32(binary.NativeEndian.Uint32(raw[off:])))
}

func waitStatus(ws unix.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "signal: " + ws.Signal().String()
	}
	return "unknown"
}
