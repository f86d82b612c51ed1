package master

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// The control socket is trusted, by the master and by ctl, as ssh and tmux
// trust their sockets: the directory holding it must not let another user
// replace it, and the process at the other end must be ours (or root).

// ControlDir is where masters started without an explicit control path
// put their sockets: $RUNTIME_DIRECTORY (made by systemd for a service with
// RuntimeDirectory=; the first if several), else $XDG_RUNTIME_DIR/clusterd,
// else /tmp/clusterd-UID.
func ControlDir() string {
	if d, _, _ := strings.Cut(os.Getenv("RUNTIME_DIRECTORY"), ":"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "clusterd")
	}
	return filepath.Join(os.TempDir(), "clusterd-"+strconv.Itoa(os.Getuid()))
}

// ensureControlDir creates dir (mode 0700) or accepts an existing one only
// if it is a directory of ours that neither group nor others may write.
func ensureControlDir(dir string) error {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory; remove it or pass --control PATH", dir)
	case st != nil && int(st.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to uid %d, not to us (uid %d); remove it or pass --control PATH", dir, st.Uid, os.Getuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by group or others (mode %v); chmod 700 it or pass --control PATH", dir, fi.Mode().Perm())
	}
	return nil
}

// trustedOwner reports whether uid may own what a control client trusts.
func trustedOwner(uid uint32) bool { return int(uid) == os.Getuid() || uid == 0 }

// checkSocket refuses a control socket another user could have put there:
// it must be a socket owned by us or root, in a directory owned by us or
// root that others cannot write (unless sticky, as /tmp).
func checkSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w at %s (no such socket)", ErrNoMaster, path)
	}
	if err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%s is not a socket", path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && !trustedOwner(st.Uid) {
		return fmt.Errorf("refusing control socket %s: it belongs to uid %d, not to us (uid %d)", path, st.Uid, os.Getuid())
	}
	return checkSocketDir(filepath.Dir(path))
}

// checkSocketDir refuses a directory another user could replace a socket in.
func checkSocketDir(dir string) error {
	di, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st, ok := di.Sys().(*syscall.Stat_t)
	switch {
	case ok && !trustedOwner(st.Uid):
		return fmt.Errorf("refusing control directory %s: it belongs to uid %d, not to us (uid %d)", dir, st.Uid, os.Getuid())
	case di.Mode().Perm()&0o022 != 0 && di.Mode()&fs.ModeSticky == 0:
		return fmt.Errorf("refusing control directory %s: it is writable by group or others (mode %v)", dir, di.Mode().Perm())
	}
	return nil
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if cerr != nil {
		return 0, os.NewSyscallError("getsockopt SO_PEERCRED", cerr)
	}
	return cred.Uid, nil
}

// checkPeer admits only root and user uid: the master's own, or, with
// Config.User, its workers'.
func checkPeer(c *net.UnixConn, uid int) error {
	peer, err := peerUID(c)
	if err != nil {
		return err
	}
	if int(peer) != uid && peer != 0 {
		return fmt.Errorf("uid %d may not control this master (only uid %d and root may)", peer, uid)
	}
	return nil
}

// checkServer refuses a control socket served by another user's process.
func checkServer(c *net.UnixConn) error {
	uid, err := peerUID(c)
	if err != nil {
		return err
	}
	if !trustedOwner(uid) {
		return fmt.Errorf("refusing control socket %s: it is served by uid %d, not by us (uid %d)", c.RemoteAddr(), uid, os.Getuid())
	}
	return nil
}
