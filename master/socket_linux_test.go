package master

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSocketOwner: with an owner set, the socket file belongs to it before
// the socket listens, and a stale socket of that owner's is replaced while
// another user's is still refused.
func TestSocketOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	const nobody = 65534
	dir, err := os.MkdirTemp("", "cd")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")
	o := SocketOptions{Owner: &SocketOwner{UID: nobody, GID: nobody}}
	f, sf, err := bindUnix(path, o)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if st := fi.Sys().(*syscall.Stat_t); err != nil || st.Uid != nobody || st.Gid != nobody || fi.Mode().Perm() != DefaultSocketMode {
		t.Fatalf("socket file: %v uid %d gid %d %v", fi.Mode(), st.Uid, st.Gid, err)
	}
	_ = f.Close() // leaves a stale socket of nobody's
	f, sf2, err := bindUnix(path, o)
	if err != nil {
		t.Fatalf("stale socket of the owner's not replaced: %v", err)
	}
	_ = f.Close()
	sf.remove() // another file now: must stay
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("removed a socket file the master no longer owns: %v", err)
	}
	if _, _, err := bindUnix(path, SocketOptions{}); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("another user's stale socket: %v", err)
	}
	sf2.remove()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left: %v", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		t.Error("a closed listener still answers")
	}
}
