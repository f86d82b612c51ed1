package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/libp2p/go-reuseport"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// A reuseport group is the set of SO_REUSEPORT listening sockets bound to
// one TCP address, one per worker slot. The kernel spreads new connections
// over the group; a classic BPF program attached to the group
// (SO_ATTACH_REUSEPORT_CBPF) picks which socket gets each one. It returns
// an index into the group's sockets, in the order they joined it; closing
// a socket moves the last one into its place (reuseport_detach_sock), so
// the group keeps members in that order and steers again after any close.
type rpGroup struct {
	key     string
	addr    string // the address every socket binds, port resolved
	opts    SocketOptions
	members []*rpSocket // the kernel's index order
	steered []int       // the indices the attached program picks from
}

// rpSocket is one listening socket of a group, held by the master for as
// long as its slot lives and handed to every worker of that slot.
type rpSocket struct {
	slot    int
	file    *os.File
	fd      int
	leaving bool // the slot was scaled away: steered clear, closed once empty
}

// bindReuseportBase binds addr with SO_REUSEPORT without listening: the
// port is the master's (a busy one fails at once) and every slot's socket
// binds it again, but a socket that does not listen is not in the group
// and never gets a connection.
func bindReuseportBase(addr string, o SocketOptions) (*os.File, string, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return nil, "", err
	}
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if ip4 := ta.IP.To4(); ip4 != nil && ta.IP != nil && !ta.IP.Equal(net.IPv6unspecified) {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: ta.Port, Addr: [4]byte(ip4)}
	} else {
		s6 := &unix.SockaddrInet6{Port: ta.Port}
		if ta.IP != nil {
			copy(s6.Addr[:], ta.IP.To16())
		}
		sa = s6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return nil, "", os.NewSyscallError("socket", err)
	}
	f := os.NewFile(uintptr(fd), "reuseport:"+addr)
	if err := setReuse(fd, family, ta.IP == nil); err != nil {
		_ = f.Close()
		return nil, "", err
	}
	if err := unix.Bind(fd, sa); err != nil {
		_ = f.Close()
		return nil, "", fmt.Errorf("listen tcp %s: %w", addr, os.NewSyscallError("bind", err))
	}
	bound, err := unix.Getsockname(fd)
	if err != nil {
		_ = f.Close()
		return nil, "", os.NewSyscallError("getsockname", err)
	}
	_, s := sockaddrString(bound)
	return f, s, nil
}

// setReuse sets SO_REUSEPORT alone: without SO_REUSEADDR no other socket
// (a plain listener of another program) may bind the port while the base
// does not listen. An IPv6 socket for an unspecified host is dual-stack, as
// Go makes it.
func setReuse(fd, family int, anyHost bool) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return os.NewSyscallError("setsockopt SO_REUSEPORT", err)
	}
	if family == unix.AF_INET6 && anyHost {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	}
	return nil
}

// join adds a listening socket for slot to the group, through
// go-reuseport (SO_REUSEADDR and SO_REUSEPORT). It takes no connections
// until the group is steered to it.
func (g *rpGroup) join(slot int) (*rpSocket, error) {
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		if err := reuseport.Control(network, address, c); err != nil {
			return err
		}
		var serr error
		err := c.Control(func(fd uintptr) { serr = g.opts.applyTCP(int(fd)) })
		return errors.Join(err, serr)
	}}
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp", g.addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s for worker %d: %w", g.key, slot, err)
	}
	f, err := unpolledFile(ln)
	_ = ln.Close() // f holds the socket
	if err != nil {
		return nil, err
	}
	s := &rpSocket{slot: slot, file: f}
	if s.fd, err = rawfd.Of(f); err == nil {
		err = relisten(f, g.opts.backlog())
	}
	if err == nil {
		err = os.NewSyscallError("fcntl O_NONBLOCK", unix.SetNonblock(s.fd, true))
	}
	if err != nil {
		_ = f.Close() // Go closed its own descriptor: this was the last
		return nil, err
	}
	g.members = append(g.members, s)
	return s, nil
}

// close closes s for good and keeps the members in the kernel's order.
// The master's descriptor may not be the last one (a worker that has not
// exited yet), so the socket is shut down first: that takes it out of the
// group now, whoever else holds it.
func (g *rpGroup) close(s *rpSocket) {
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
	_ = s.file.Close()
	for i, x := range g.members {
		if x == s {
			last := len(g.members) - 1
			g.members[i] = g.members[last]
			g.members = g.members[:last]
			break
		}
	}
	g.steered = nil // the indices moved: steer again
}

// queued is how many established connections wait in s's accept queue
// (tcpi_unacked of a listening socket is its accept queue length).
func (s *rpSocket) queued() (int, error) {
	ti, err := unix.GetsockoptTCPInfo(s.fd, unix.IPPROTO_TCP, unix.TCP_INFO)
	if err != nil {
		return 0, os.NewSyscallError("getsockopt TCP_INFO", err)
	}
	return int(ti.Unacked), nil
}

// acceptOne takes a connection from s's queue; nil when it is empty.
func (s *rpSocket) acceptOne() (*os.File, error) {
	for {
		fd, _, err := unix.Accept4(s.fd, unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
			return os.NewFile(uintptr(fd), "conn"), nil
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.EINVAL):
			return nil, nil
		case errors.Is(err, unix.EINTR), errors.Is(err, unix.ECONNABORTED):
			continue
		}
		return nil, os.NewSyscallError("accept4", err)
	}
}

// steer attaches a program that sends every new connection to one of the
// members at the indices idx. It does nothing when the program
// attached already picks from idx.
func (g *rpGroup) steer(idx []int) error {
	if len(g.members) == 0 || len(idx) == 0 || equalInts(g.steered, idx) {
		return nil
	}
	prog := steerProgram(idx)
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	if err := unix.SetsockoptSockFprog(g.members[0].fd, unix.SOL_SOCKET, unix.SO_ATTACH_REUSEPORT_CBPF, &fprog); err != nil {
		return os.NewSyscallError("setsockopt SO_ATTACH_REUSEPORT_CBPF", err)
	}
	g.steered = append(g.steered[:0:0], idx...)
	return nil
}

// Classic BPF opcodes (linux/filter.h).
const (
	bpfLdBAbs = unix.BPF_LD | unix.BPF_B | unix.BPF_ABS
	bpfLdHAbs = unix.BPF_LD | unix.BPF_H | unix.BPF_ABS
	bpfRshK   = unix.BPF_ALU | unix.BPF_RSH | unix.BPF_K
	bpfModK   = unix.BPF_ALU | unix.BPF_MOD | unix.BPF_K
	bpfJa     = unix.BPF_JMP | unix.BPF_JA
	bpfJeqK   = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	bpfRetK   = unix.BPF_RET | unix.BPF_K
	bpfRetA   = unix.BPF_RET | unix.BPF_A
	// skfNetOff makes a load's offset relative to the IP header (SKF_NET_OFF).
	skfNetOff = -0x100000
)

// steerProgram returns a program that sends a connection to
// idx[(source port / 2) % len(idx)]: many clients' ports spread evenly, a
// SYN sent again goes where the first went, and one client's successive
// connections (even ports in turn from Linux's connect before 5.19, with
// small random steps since) spread as evenly as chance makes them. The
// source port is read past a 20-byte IPv4 header (one with options reads
// other bytes: still a valid choice) or a 40-byte IPv6 header. The index
// is the remainder itself when idx is 0..n-1, else found by a chain of
// compare-and-return pairs (short jumps only, so any pool size fits under
// the kernel's 4096 instructions).
func steerProgram(idx []int) []unix.SockFilter {
	prog := []unix.SockFilter{
		{Code: bpfLdBAbs, K: uint32(skfNetOff & 0xffffffff)}, // version and header length
		{Code: bpfRshK, K: 4},
		{Code: bpfJeqK, K: 6, Jt: 2, Jf: 0},
		{Code: bpfLdHAbs, K: uint32((skfNetOff + 20) & 0xffffffff)},
		{Code: bpfJa, K: 1},
		{Code: bpfLdHAbs, K: uint32((skfNetOff + 40) & 0xffffffff)},
		{Code: bpfRshK, K: 1},
		{Code: bpfModK, K: uint32(len(idx))},
	}
	identity := true
	for i, x := range idx {
		identity = identity && x == i
	}
	if identity {
		return append(prog, unix.SockFilter{Code: bpfRetA})
	}
	for i, x := range idx {
		prog = append(prog,
			unix.SockFilter{Code: bpfJeqK, Jt: 0, Jf: 1, K: uint32(i)},
			unix.SockFilter{Code: bpfRetK, K: uint32(x)})
	}
	return append(prog, unix.SockFilter{Code: bpfRetK, K: uint32(idx[0])})
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
