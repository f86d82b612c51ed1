package master

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// workerCredential resolves the user (and group) the workers run as: nil
// when userName is empty (workers run as the master does). Only a master
// started as root can start workers as another user; its workers then get
// that user's uid, the group's (default: the user's primary) gid, and no
// supplementary groups. primaryGID is the user's own primary group.
func workerCredential(userName, groupName string) (cred *syscall.Credential, primaryGID uint32, err error) {
	if userName == "" {
		if groupName != "" {
			return nil, 0, fmt.Errorf("workers' group %q: a group needs a user too", groupName)
		}
		return nil, 0, nil
	}
	if euid := os.Geteuid(); euid != 0 {
		return nil, 0, fmt.Errorf("workers' user %q: only a master started as root can run workers as another user (this one runs as uid %d)", userName, euid)
	}
	uid, primaryGID, err := lookupUser(userName)
	if err != nil {
		return nil, 0, err
	}
	gid := primaryGID
	if groupName != "" {
		if gid, err = lookupGroup(groupName); err != nil {
			return nil, 0, err
		}
	}
	return &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}, NoSetGroups: false}, primaryGID, nil
}

// lookupUser finds a user by name, or by number (a number with no entry in
// the user database, as in an image without /etc/passwd, is taken as is,
// with the same number as its group).
func lookupUser(name string) (uid, gid uint32, err error) {
	u, err := user.Lookup(name)
	if err != nil && isID(name) {
		u, err = user.LookupId(name)
		if errors.As(err, new(user.UnknownUserIdError)) {
			id, _ := strconv.ParseUint(name, 10, 32)
			return uint32(id), uint32(id), nil
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("workers' user %q: %w", name, err)
	}
	uid64, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid64, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("workers' user %q: uid %q, gid %q are not numbers", name, u.Uid, u.Gid)
	}
	return uint32(uid64), uint32(gid64), nil
}

func lookupGroup(name string) (uint32, error) {
	g, err := user.LookupGroup(name)
	if err != nil && isID(name) {
		g, err = user.LookupGroupId(name)
		if errors.As(err, new(user.UnknownGroupIdError)) {
			id, _ := strconv.ParseUint(name, 10, 32)
			return uint32(id), nil
		}
	}
	if err != nil {
		return 0, fmt.Errorf("workers' group %q: %w", name, err)
	}
	gid, err := strconv.ParseUint(g.Gid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("workers' group %q: gid %q is not a number", name, g.Gid)
	}
	return uint32(gid), nil
}

func isID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// shareControl opens the control socket to the workers' user: it stays
// root's, so that clients can trust it, in the user's primary group with
// mode 0660, and the default directory holding it becomes 0711 (others may
// enter, not list or write). The master's peer check then admits root and
// the user, and no other member of the group.
func (m *Master) shareControl(path string) error {
	if m.cred == nil {
		return nil
	}
	if err := os.Chown(path, -1, int(m.ctlGID)); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir == ControlDir() {
		return os.Chmod(dir, 0o711)
	}
	return nil
}

// controlUID is the user, besides root, the control socket admits: the
// workers' user when they run as another one, else the master's.
func (m *Master) controlUID() int {
	if m.cred != nil {
		return int(m.cred.Uid)
	}
	return os.Getuid()
}
