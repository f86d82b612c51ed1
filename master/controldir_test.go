package master

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestControlDir(t *testing.T) {
	for _, tc := range []struct{ runtime, xdg, want string }{
		{"/run/clusterd", "/run/user/0", "/run/clusterd"},
		{"/run/a:/run/b", "", "/run/a"},
		{"", "/run/user/1000", "/run/user/1000/clusterd"},
		{"", "", filepath.Join(os.TempDir(), "clusterd-"+strconv.Itoa(os.Getuid()))},
	} {
		t.Setenv("RUNTIME_DIRECTORY", tc.runtime)
		t.Setenv("XDG_RUNTIME_DIR", tc.xdg)
		if got := ControlDir(); got != tc.want {
			t.Errorf("RUNTIME_DIRECTORY=%q XDG_RUNTIME_DIR=%q: %q, want %q", tc.runtime, tc.xdg, got, tc.want)
		}
	}
}
