package master

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Listener forms: how a --listen value names its socket.
const (
	FormTCP      = "tcp"      // host:port, bound by the master
	FormUnix     = "unix"     // unix:/path, a socket file the master creates
	FormAbstract = "abstract" // unix:@name, Linux's abstract namespace: no file
	FormFD       = "fd"       // fd:N, a listening socket the process inherited
	FormSystemd  = "systemd"  // systemd:NAME, or any socket from LISTEN_FDS
)

// DefaultBacklog is the accept queue length of the sockets the master
// creates: 511, as Node and nginx use. Go's own default (net.core.somaxconn,
// often 4096) lets a saturated server queue thousands of connections that
// wait seconds and then time out at the client; a shorter queue makes an
// overloaded server refuse early, where a load balancer can retry elsewhere.
// The kernel caps any value at net.core.somaxconn.
const DefaultBacklog = 511

// ListenSpec is a parsed --listen value.
type ListenSpec struct {
	Form string
	Addr string // host:port, the socket path, "@name", the fd number or the systemd name
	FD   int    // FormFD only
}

// ParseListen parses a --listen value: host:port ([::1]:8080, :8080),
// unix:/path/app.sock, unix:@name, fd:N or systemd:NAME. Every error is
// one line naming the value.
func ParseListen(s string) (ListenSpec, error) {
	form, rest, ok := strings.Cut(s, ":")
	switch {
	case ok && form == FormUnix:
		return parseUnix(s, rest)
	case ok && form == FormFD:
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 || strconv.Itoa(n) != rest {
			return ListenSpec{}, fmt.Errorf("--listen %q: want fd:N with N a descriptor number", s)
		}
		return ListenSpec{Form: FormFD, Addr: rest, FD: n}, nil
	case ok && form == FormSystemd:
		if rest == "" || strings.Contains(rest, ":") {
			return ListenSpec{}, fmt.Errorf("--listen %q: want systemd:NAME (a FileDescriptorName= of the socket unit)", s)
		}
		return ListenSpec{Form: FormSystemd, Addr: rest}, nil
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return ListenSpec{}, fmt.Errorf("--listen %q: want host:port, unix:/path, unix:@name, fd:N or systemd:NAME", s)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return ListenSpec{}, fmt.Errorf("--listen %q: bad port %q", s, port)
	}
	return ListenSpec{Form: FormTCP, Addr: s}, nil
}

// maxUnixPath is the longest socket path the kernel accepts (sun_path is
// 108 bytes, NUL included).
const maxUnixPath = 107

func parseUnix(s, path string) (ListenSpec, error) {
	switch {
	case path == "" || path == "@":
		return ListenSpec{}, fmt.Errorf("--listen %q: want unix:/path or unix:@name", s)
	case len(path) > maxUnixPath:
		return ListenSpec{}, fmt.Errorf("--listen %q: socket path of %d bytes exceeds the kernel's %d", s, len(path), maxUnixPath)
	case strings.ContainsRune(path, 0):
		return ListenSpec{}, fmt.Errorf("--listen %q: NUL in socket path", s)
	case path[0] == '@':
		return ListenSpec{Form: FormAbstract, Addr: path}, nil
	}
	return ListenSpec{Form: FormUnix, Addr: path}, nil
}
