package master

// The new master of an upgrade, as the old one runs and watches it: its
// configuration check, its start with the readiness channel, its end.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// checkBinary runs command with EnvCheck=1 and returns its reason if the
// check fails. A binary that ignores EnvCheck may start serving instead:
// its process group is killed when ctx ends.
func checkBinary(ctx context.Context, command []string) error {
	cmd := exec.CommandContext(ctx, command[0], command[1:]...)
	cmd.Env = append(childEnv(os.Environ()), EnvCheck+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // for what its group left holding the output
	out, err := cmd.CombinedOutput()
	switch {
	case ctx.Err() != nil:
		return errors.New("the new binary's configuration check did not finish within the ready timeout; killed it")
	case err != nil:
		return fmt.Errorf("the new binary failed its configuration check (%s): %s", exitStatus(err), lastLine(out))
	case !strings.Contains(string(out), checkOK):
		return fmt.Errorf("the new binary did not check its configuration (no %q; does it support upgrades?): %s", checkOK, lastLine(out))
	}
	return nil
}

// lastLine is the last non-empty line of out, or a note that there is none.
func lastLine(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if s := strings.TrimSpace(lines[len(lines)-1]); s != "" {
		return s
	}
	return "it printed nothing"
}

// childEnv is the environment for the new binary: the master's, without
// what it was told for itself alone. WATCHDOG_PID names this master: the
// new one, without it, pings the watchdog once it is the main process.
func childEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !hasAnyPrefix(kv, []string{EnvCheck + "=", EnvUpgrade + "=", "LISTEN_PID=", "LISTEN_FDS=", "LISTEN_FDNAMES=", "WATCHDOG_PID="}) {
			out = append(out, kv)
		}
	}
	return out
}

// nextMaster is the new master process, as the old one sees it.
type nextMaster struct {
	cmd    *exec.Cmd
	ch     *os.File
	lines  chan string // from the channel; closed at EOF
	exited chan error  // Wait's result
	// committed: it was told to take over, and may be serving the
	// control socket, whose file a graceful stop would remove.
	committed bool
}

func (n *nextMaster) pid() int { return n.cmd.Process.Pid }

// startNewMaster starts command with the readiness channel as fd 3, then files.
func startNewMaster(command []string, files []*os.File, env upgradeEnv) (*nextMaster, error) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, os.NewSyscallError("socketpair", err)
	}
	// Ours non-blocking, so that closing it ends the read in progress.
	if err := unix.SetNonblock(pair[0], true); err != nil {
		_, _ = unix.Close(pair[0]), unix.Close(pair[1])
		return nil, os.NewSyscallError("set the upgrade channel non-blocking", err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "upgrade"), os.NewFile(uintptr(pair[1]), "upgrade")
	defer theirs.Close()
	if env.TicketKeys { // the first line; the socket buffer holds it until the new master reads
		if _, err := fmt.Fprintln(ours, env.tickets); err != nil {
			_ = ours.Close()
			return nil, fmt.Errorf("pass the session ticket keys: %w", err)
		}
	}
	b, _ := json.Marshal(env)
	cmd := exec.Command(command[0], command[1:]...)
	cmd.Env = append(childEnv(os.Environ()), EnvUpgrade+"="+string(b))
	cmd.ExtraFiles = append([]*os.File{theirs}, files...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = ours.Close()
		return nil, fmt.Errorf("start the new binary: %w", err)
	}
	n := &nextMaster{cmd: cmd, ch: ours, lines: make(chan string, 4), exited: make(chan error, 1)}
	go func() { n.exited <- cmd.Wait() }() // after a successful upgrade, the new master outlives us
	go func() {
		defer close(n.lines)
		sc := bufio.NewScanner(ours)
		for sc.Scan() {
			n.lines <- sc.Text()
		}
	}()
	return n, nil
}

// Stopping a failed new master: SIGQUIT first, so that it kills its
// workers (which may be stuck in start-up, deaf to their channel), then
// SIGKILL to its process group after newMasterQuitGrace. One that was
// told to commit gets SIGKILL at once: it must not remove the control
// socket file as it stops, and its workers, all serving by then, end
// when their channel does.
const (
	newMasterQuitGrace = 2 * time.Second
	newMasterKillWait  = 5 * time.Second
)

// kill stops the new master and waits for it.
func (n *nextMaster) kill() {
	defer func() { _ = n.ch.Close() }()
	if n.waitExit(0) {
		return
	}
	if !n.committed {
		_ = syscall.Kill(n.pid(), syscall.SIGQUIT)
		if n.waitExit(newMasterQuitGrace) {
			return
		}
	}
	_ = syscall.Kill(-n.pid(), syscall.SIGKILL)
	n.waitExit(newMasterKillWait)
}

// waitExit waits up to d for the new master to have exited.
func (n *nextMaster) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case err := <-n.exited:
		n.exited <- err
		return true
	case <-t.C:
		return false
	}
}

// awaitNewMaster follows the handshake until the new master is done, or
// fails: exits, says nothing in time, or the supervisor gives up.
func (m *Master) awaitNewMaster(ctx context.Context, u *upgrade, nm *nextMaster) error {
	defer func() { _ = nm.ch.Close() }()
	for {
		select {
		case line, ok := <-nm.lines:
			switch {
			case !ok:
				return m.newMasterExited(nm)
			case line == lineReady:
				m.log.Info("new master ready", "pid", nm.pid())
				nm.committed = true
				if _, err := fmt.Fprintln(nm.ch, lineCommit); err != nil {
					return fmt.Errorf("the new master (pid %d) went away: %w", nm.pid(), err)
				}
			case line == lineDone:
				return nil
			case strings.HasPrefix(line, lineFailed+" "):
				return fmt.Errorf("the new master (pid %d) could not start: %s", nm.pid(), strings.TrimPrefix(line, lineFailed+" "))
			}
		case err := <-nm.exited:
			nm.exited <- err
			return m.newMasterExited(nm)
		case <-ctx.Done():
			return fmt.Errorf("the new master (pid %d) was not ready within %v; killed it", nm.pid(), m.cfg.ReadyTimeout)
		case why := <-u.abort:
			return errors.New(why)
		}
	}
}

// newMasterExited is the error for a new master whose channel ended.
func (m *Master) newMasterExited(nm *nextMaster) error {
	select {
	case err := <-nm.exited:
		nm.exited <- err
		return fmt.Errorf("the new master (pid %d) exited during start-up (%s)", nm.pid(), exitStatus(err))
	case <-time.After(logGrace):
		return fmt.Errorf("the new master (pid %d) closed its channel during start-up", nm.pid())
	}
}
