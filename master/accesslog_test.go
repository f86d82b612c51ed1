package master

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestGiveLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := giveLog(path, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("created without a worker user")
	}
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file away")
	}
	if err := giveLog(path, &syscall.Credential{Uid: 65534, Gid: 65534}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("owner %d:%d, want 65534:65534", st.Uid, st.Gid)
	}
	if err := giveLog(filepath.Join(path, "below-a-file"), &syscall.Credential{Uid: 65534}); err == nil {
		t.Error("no error for a path below a file")
	}
}
