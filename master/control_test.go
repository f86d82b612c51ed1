package master

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureControlDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mk("target", 0o700), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		want string // "" for accepted
	}{
		{filepath.Join(base, "new"), ""},
		{mk("private", 0o700), ""},
		{mk("readable", 0o755), ""},
		{mk("open", 0o777), "writable by group or others"},
		{mk("group", 0o770), "writable by group or others"},
		{mk("sticky", os.ModeSticky|0o777), "writable by group or others"},
		{file, "not a directory"},
		{link, "not a directory"},
	}
	if os.Getuid() == 0 {
		foreign := mk("foreign", 0o700)
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ dir, want string }{foreign, "belongs to uid 65534"})
	}
	for _, tt := range tests {
		err := ensureControlDir(tt.dir)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ensureControlDir(%s) = %v; want %q", filepath.Base(tt.dir), err, tt.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "new")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("new control dir: %v %v", fi.Mode(), err)
	}
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := checkSocket(path); err != nil {
		t.Errorf("own socket refused: %v", err)
	}
	if err := checkSocket(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "no clusterd master") {
		t.Errorf("missing socket: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	_ = os.WriteFile(plain, nil, 0o600)
	if err := checkSocket(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("plain file: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("socket in an open directory: %v", err)
	}
	_ = os.Chmod(dir, os.ModeSticky|0o777) // sticky, as /tmp: others cannot replace it
	if err := checkSocket(path); err != nil {
		t.Errorf("socket in a sticky directory: %v", err)
	}
	if os.Getuid() != 0 {
		return
	}
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("foreign socket: %v", err)
	}
	_ = os.Lchown(path, 0, 0)
	_ = os.Chmod(dir, 0o700)
	_ = os.Chown(dir, 65534, 65534)
	defer os.Chown(dir, 0, 0)
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("socket in a foreign directory: %v", err)
	}
}
