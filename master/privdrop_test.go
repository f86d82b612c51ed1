package master

import (
	"os"
	"strings"
	"testing"
)

func TestWorkerCredential(t *testing.T) {
	if cred, _, err := workerCredential("", ""); cred != nil || err != nil {
		t.Errorf("no user: %v %v", cred, err)
	}
	if _, _, err := workerCredential("", "daemon"); err == nil || !strings.Contains(err.Error(), "needs a user") {
		t.Errorf("group without user: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, _, err := workerCredential("nobody", ""); err == nil || !strings.Contains(err.Error(), "only a master started as root") {
			t.Errorf("not root: %v", err)
		}
		return
	}
	tests := []struct {
		user, group string
		uid, gid    uint32
		err         string
	}{
		{"root", "", 0, 0, ""},
		{"0", "0", 0, 0, ""},
		{"4242", "", 4242, 4242, ""}, // a number with no entry is taken as is
		{"4242", "4343", 4242, 4343, ""},
		{"root", "4343", 0, 4343, ""},
		{"no-such-user-here", "", 0, 0, "workers' user"},
		{"root", "no-such-group-here", 0, 0, "workers' group"},
	}
	for _, tt := range tests {
		cred, _, err := workerCredential(tt.user, tt.group)
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s:%s: %v, want %q", tt.user, tt.group, err, tt.err)
			}
		case err != nil:
			t.Errorf("%s:%s: %v", tt.user, tt.group, err)
		case cred.Uid != tt.uid || cred.Gid != tt.gid || len(cred.Groups) != 0:
			t.Errorf("%s:%s: %+v, want uid %d gid %d", tt.user, tt.group, cred, tt.uid, tt.gid)
		}
	}
}
