package master

import (
	"strings"
	"testing"
)

func TestParseListen(t *testing.T) {
	long := "/" + strings.Repeat("a", maxUnixPath-1)
	for _, tc := range []struct {
		in   string
		want ListenSpec
		err  string
	}{
		{"127.0.0.1:8080", ListenSpec{Form: FormTCP, Addr: "127.0.0.1:8080"}, ""},
		{":0", ListenSpec{Form: FormTCP, Addr: ":0"}, ""},
		{"[::1]:65535", ListenSpec{Form: FormTCP, Addr: "[::1]:65535"}, ""},
		{"localhost:65536", ListenSpec{}, "bad port"},
		{"8080", ListenSpec{}, "want host:port, unix:/path"},
		{"unix:/run/app.sock", ListenSpec{Form: FormUnix, Addr: "/run/app.sock"}, ""},
		{"unix:rel.sock", ListenSpec{Form: FormUnix, Addr: "rel.sock"}, ""},
		{"unix:@app", ListenSpec{Form: FormAbstract, Addr: "@app"}, ""},
		{"unix:" + long, ListenSpec{Form: FormUnix, Addr: long}, ""},
		{"unix:" + long + "a", ListenSpec{}, "exceeds the kernel's 107"},
		{"unix:", ListenSpec{}, "want unix:/path or unix:@name"},
		{"unix:@", ListenSpec{}, "want unix:/path or unix:@name"},
		{"unix:/a\x00b", ListenSpec{}, "NUL"},
		{"fd:0", ListenSpec{Form: FormFD, Addr: "0", FD: 0}, ""},
		{"fd:3", ListenSpec{Form: FormFD, Addr: "3", FD: 3}, ""},
		{"fd:03", ListenSpec{}, "want fd:N"},
		{"fd:-1", ListenSpec{}, "want fd:N"},
		{"fd:", ListenSpec{}, "want fd:N"},
		{"fd:x", ListenSpec{}, "want fd:N"},
		{"systemd:web", ListenSpec{Form: FormSystemd, Addr: "web"}, ""},
		{"systemd:", ListenSpec{}, "want systemd:NAME"},
		{"systemd:a:b", ListenSpec{}, "want systemd:NAME"},
	} {
		got, err := ParseListen(tc.in)
		switch {
		case tc.err == "" && (err != nil || got != tc.want):
			t.Errorf("ParseListen(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), "\n")):
			t.Errorf("ParseListen(%q) error %v; want one line with %q", tc.in, err, tc.err)
		}
	}
}

func TestSameTCPAddr(t *testing.T) {
	for _, tc := range []struct {
		bound, want string
		same        bool
	}{
		{"127.0.0.1:8080", "127.0.0.1:8080", true},
		{"127.0.0.1:8080", "localhost:8080", true},
		{"127.0.0.1:8080", "127.0.0.1:8081", false},
		{"127.0.0.1:8080", "127.0.0.2:8080", false},
		{"[::]:8080", ":8080", true},
		{"0.0.0.0:8080", ":8080", true},
		{"0.0.0.0:8080", "0.0.0.0:8080", true},
		{"[::]:8080", "0.0.0.0:8080", true},
		{"127.0.0.1:8080", ":8080", false},
		{"[::1]:8080", "[::1]:8080", true},
		{"127.0.0.1:0", "127.0.0.1:0", false},
	} {
		if got := sameTCPAddr(tc.bound, tc.want); got != tc.same {
			t.Errorf("sameTCPAddr(%q, %q) = %v", tc.bound, tc.want, got)
		}
	}
}

// TestInheritedOnlyAtStart: once the configured listeners are open, a
// worker cannot have the master adopt one of its own descriptors.
func TestInheritedOnlyAtStart(t *testing.T) {
	tab := newListenerTable(SocketOptions{}, false)
	tab.opened = true
	for _, key := range []string{"fd:0", "fd:3", "systemd:web"} {
		if _, err := tab.get(key); err == nil || !strings.Contains(err.Error(), "only at start") {
			t.Errorf("get(%q) after start: %v", key, err)
		}
	}
}
