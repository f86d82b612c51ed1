package master

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Request is one command on the control socket: a JSON line.
type Request struct {
	Cmd string `json:"cmd"`         // CmdStatus, CmdReload, CmdScale or CmdStop
	N   int    `json:"n,omitempty"` // for scale
}

// Response answers a Request: a JSON line.
type Response = response

type response struct {
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
	Message string  `json:"message,omitempty"`
	Status  *Status `json:"status,omitempty"`
}

// request is a Request on its way to the supervisor.
type request struct {
	Request
	reply chan response
}

// ControlDir is where masters started without an explicit control path
// put their sockets: $XDG_RUNTIME_DIR/clusterd, else /tmp/clusterd-UID.
func ControlDir() string {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "clusterd")
	}
	return filepath.Join(os.TempDir(), "clusterd-"+strconv.Itoa(os.Getuid()))
}

// listenControl opens the control socket, mode 0600, in a 0700 directory
// when it is the default one.
func (m *Master) listenControl(path string) (*net.UnixListener, error) {
	if path == "" {
		dir := ControlDir()
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
		path = filepath.Join(dir, "master-"+strconv.Itoa(os.Getpid())+".sock")
	}
	if isStaleSocket(path) {
		_ = os.Remove(path)
	}
	old := unix.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	unix.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	m.ctlPath = path
	return ln, nil
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

// serveControl accepts control connections until ln is closed.
func (m *Master) serveControl(ln *net.UnixListener) {
	defer m.wg.Done()
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				m.log.Error("control socket", "error", err)
			}
			return
		}
		m.wg.Add(1)
		go m.serveControlConn(c)
	}
}

func (m *Master) serveControlConn(c *net.UnixConn) {
	defer m.wg.Done()
	defer c.Close()
	enc := json.NewEncoder(c)
	if err := checkPeer(c); err != nil {
		m.log.Warn("control connection refused", "error", err)
		_ = enc.Encode(response{Error: err.Error()})
		return
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(&limited{c, 4096}).ReadBytes('\n')
	var req Request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		_ = enc.Encode(response{Error: "bad request: " + err.Error()})
		return
	}
	_ = c.SetReadDeadline(time.Time{})
	r := &request{Request: req, reply: make(chan response, 1)}
	select {
	case m.events <- event{ctl: r}:
	case <-m.done:
		_ = enc.Encode(response{Error: "the master is stopping"})
		return
	}
	select {
	case resp := <-r.reply:
		_ = enc.Encode(resp)
	case <-m.done:
		_ = enc.Encode(response{Error: "the master stopped"})
	}
}

// checkPeer admits only the master's own user and root.
func checkPeer(c *net.UnixConn) error {
	raw, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return err
	}
	if cerr != nil {
		return os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	if uid := int(cred.Uid); uid != os.Getuid() && uid != 0 {
		return fmt.Errorf("uid %d may not control a master of uid %d", uid, os.Getuid())
	}
	return nil
}

// limited reads at most n bytes.
type limited struct {
	c *net.UnixConn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	p = p[:min(len(p), l.n)]
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// control runs a control request on the supervisor goroutine.
func (m *Master) control(r *request) {
	m.log.Debug("control request", "cmd", r.Cmd, "n", r.N)
	var err error
	switch r.Cmd {
	case CmdStatus:
		r.reply <- response{OK: true, Status: m.status()}
		return
	case CmdReload:
		if err = m.startRoll(r.reply); err == nil {
			return // the roll answers when it ends
		}
	case CmdScale:
		if err = m.scale(r.N); err == nil {
			r.reply <- response{OK: true, Message: fmt.Sprintf("scaled to %d workers", r.N)}
			return
		}
	case CmdStop:
		if !m.stopping {
			m.log.Info("graceful stop", "by", "control socket")
			m.stopGracefully()
		}
		r.reply <- response{OK: true, Message: "stopping"}
		return
	default:
		err = fmt.Errorf("unknown command %q", r.Cmd)
	}
	r.reply <- response{Error: err.Error()}
}
