package master

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// controlSocketPath is where the master with this pid puts its default
// control socket in dir; a negative pid gives the glob that matches every
// master's.
func controlSocketPath(dir string, pid int) string {
	id := "*"
	if pid >= 0 {
		id = strconv.Itoa(pid)
	}
	return filepath.Join(dir, "master-"+id+".sock")
}

// listenControl opens the control socket, mode 0600; the default one in
// a directory that only we can write (see ensureControlDir).
func (m *Master) listenControl(path string) (*net.UnixListener, error) {
	if path == "" {
		dir := ControlDir()
		if err := ensureControlDir(dir); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		path = controlSocketPath(dir, os.Getpid())
	}
	if isStaleSocket(path) {
		if err := os.Remove(path); err != nil {
			m.log.Warn("cannot remove a stale control socket", "path", path, "error", err)
		}
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err == nil {
		err = m.shareControl(path)
	}
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	m.ctlPath = path
	return ln, nil
}

// FindControl returns the control socket of the one master running with
// the default control path. Stale sockets are skipped.
func FindControl() (string, error) {
	dir := ControlDir()
	if _, err := os.Stat(dir); err == nil {
		if err := checkSocketDir(dir); err != nil {
			return "", err
		}
	}
	paths, _ := filepath.Glob(controlSocketPath(dir, -1))
	var live []string
	for _, p := range paths {
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			_ = c.Close()
			live = append(live, p)
		} else if isStaleSocket(p) {
			_ = os.Remove(p)
		}
	}
	switch len(live) {
	case 0:
		return "", fmt.Errorf("%w (no control socket in %s; pass --control PATH)", ErrNoMaster, dir)
	case 1:
		return live[0], nil
	}
	return "", fmt.Errorf("%d masters are running (%s); pass --control PATH", len(live), strings.Join(live, ", "))
}

// isStaleSocket reports whether path is a socket no one listens on.
func isStaleSocket(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return false
	}
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		_ = c.Close()
		return false
	}
	return errors.Is(err, unix.ECONNREFUSED)
}
