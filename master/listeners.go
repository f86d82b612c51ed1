package master

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/ipc"
)

// listener is one listening socket the master holds for its whole life.
// Workers receive duplicates and close only those.
type listener struct {
	key     string      // the --listen value workers ask for
	form    string      // how it was obtained: FormTCP, FormUnix, …
	addr    string      // what it listens on: 127.0.0.1:41234, /run/app.sock, @name
	backlog int         // set by the master; 0: as inherited
	file    *os.File    // no Go poller watches it; rr mode accepts on a listener made from it
	sock    *socketFile // the socket file to remove at the end, if the master made it
	// reuseport: file is bound with SO_REUSEPORT but does not listen; each
	// worker slot gets a socket of its own bound to addr (rpGroup).
	reuseport bool
}

// listenerTable holds the master's listening sockets by key.
type listenerTable struct {
	opts      SocketOptions
	byKey     map[string]*listener
	order     []*listener
	inherited []*inherited // from the service manager (LISTEN_FDS)
	opened    bool         // the configured listeners are open
	reuseport bool         // TCP listeners the master binds get a socket per slot
}

func newListenerTable(opts SocketOptions, reuseport bool) *listenerTable {
	return &listenerTable{opts: opts, byKey: map[string]*listener{}, reuseport: reuseport}
}

// get returns the listener for a --listen value, creating it on first use.
func (t *listenerTable) get(key string) (*listener, error) {
	if l, ok := t.byKey[key]; ok {
		return l, nil
	}
	if in := t.upgradeKey(key); in != nil {
		return t.adoptUpgrade(key, in)
	}
	spec, err := ParseListen(key)
	if err != nil {
		return nil, err
	}
	if t.opened && (spec.Form == FormFD || spec.Form == FormSystemd) {
		// By now the master's own descriptors (the control socket among
		// them) could be taken for inherited ones.
		return nil, fmt.Errorf("listen %s: inherited sockets are taken only at start, from --listen", key)
	}
	var l *listener
	if in := t.match(spec); in != nil {
		l, err = t.adopt(key, in.fd, in.file, FormSystemd)
		in.used = err == nil
	} else {
		l, err = t.create(key, spec)
	}
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", key, err)
	}
	t.byKey[key] = l
	t.order = append(t.order, l)
	return l, nil
}

// create binds a new socket, or takes over an inherited descriptor.
func (t *listenerTable) create(key string, spec ListenSpec) (*listener, error) {
	l := &listener{key: key, form: spec.Form, backlog: t.opts.backlog()}
	var err error
	switch spec.Form {
	case FormTCP:
		if l.reuseport = t.reuseport; l.reuseport {
			l.file, l.addr, err = bindReuseportBase(spec.Addr, t.opts)
		} else {
			l.file, l.addr, err = bindTCP(spec.Addr, t.opts)
		}
	case FormUnix, FormAbstract:
		l.addr = spec.Addr
		l.file, l.sock, err = bindUnix(spec.Addr, t.opts)
	case FormFD:
		return t.adopt(key, spec.FD, nil, FormFD)
	case FormSystemd:
		err = fmt.Errorf("no socket named %q was passed by the service manager%s", spec.Addr, t.names())
	}
	if err != nil {
		return nil, err
	}
	return l, nil
}

// adopt serves the inherited listening socket fd (f, when already wrapped)
// after checking it: the backlog changes only when one was configured; the
// TCP options apply.
func (t *listenerTable) adopt(key string, fd int, f *os.File, form string) (*listener, error) {
	kind, addr, err := checkInherited(fd)
	if err != nil {
		return nil, fmt.Errorf("descriptor %d: %w", fd, err)
	}
	l := &listener{key: key, form: form, addr: addr}
	if kind == FormTCP {
		if err := t.opts.applyTCP(fd); err != nil {
			return nil, err
		}
	}
	if f == nil {
		f = os.NewFile(uintptr(fd), key)
		unix.CloseOnExec(fd)
	}
	l.file = f
	if t.opts.Backlog > 0 {
		if err := relisten(l.file, t.opts.Backlog); err != nil {
			return nil, err
		}
		l.backlog = t.opts.Backlog
	}
	return l, nil
}

// match finds an unused inherited socket that serves spec: the one with
// that descriptor (fd:N), or one already bound to its address.
func (t *listenerTable) match(spec ListenSpec) *inherited {
	for _, in := range t.inherited {
		if in.used || in.err != nil {
			continue
		}
		switch spec.Form {
		case FormFD:
			if in.fd == spec.FD {
				return in
			}
		case FormUnix, FormAbstract:
			if in.form == spec.Form && sameFile(in.addr, spec.Addr) {
				return in
			}
		case FormTCP:
			if in.form == FormTCP && sameTCPAddr(in.addr, spec.Addr) {
				return in
			}
		}
	}
	return nil
}

func sameFile(a, b string) bool {
	a, errA := filepath.Abs(a)
	b, errB := filepath.Abs(b)
	return errA == nil && errB == nil && a == b
}

// sameTCPAddr reports whether the bound address bound serves the --listen
// address want: same port, and the same IP or both unspecified.
func sameTCPAddr(bound, want string) bool {
	b, err := netip.ParseAddrPort(bound)
	if err != nil {
		return false
	}
	host, port, err := net.SplitHostPort(want)
	if err != nil || port != strconv.Itoa(int(b.Port())) || b.Port() == 0 {
		return false
	}
	bip := b.Addr().Unmap()
	if host == "" {
		return bip.IsUnspecified()
	}
	ips, err := net.LookupIP(host)
	if err != nil {
		return false
	}
	for _, ip := range ips {
		a, ok := netip.AddrFromSlice(ip)
		if a = a.Unmap(); ok && (a == bip || a.IsUnspecified() && bip.IsUnspecified()) {
			return true
		}
	}
	return false
}

// expand turns the configured --listen values into the keys the workers
// ask for: systemd:NAME becomes fd:N for each socket of that name, and no
// value at all means every socket the service manager passed.
func (t *listenerTable) expand(specs []string) ([]string, error) {
	if len(specs) == 0 {
		var keys []string
		for _, in := range t.inherited {
			keys = append(keys, FormFD+":"+strconv.Itoa(in.fd))
		}
		return keys, nil
	}
	var keys []string
	for _, s := range specs {
		spec, err := ParseListen(s)
		if err != nil {
			return nil, err
		}
		if spec.Form != FormSystemd {
			keys = append(keys, s)
			continue
		}
		n := len(keys)
		for _, in := range t.inherited {
			if in.name == spec.Addr {
				keys = append(keys, FormFD+":"+strconv.Itoa(in.fd))
			}
		}
		if len(keys) == n {
			return nil, fmt.Errorf("--listen %s: no socket named %q was passed by the service manager%s", s, spec.Addr, t.names())
		}
	}
	return keys, nil
}

// names lists the inherited sockets' names for an error message.
func (t *listenerTable) names() string {
	if len(t.inherited) == 0 {
		return " (LISTEN_FDS is not set for this process)"
	}
	s := " (it passed"
	for _, in := range t.inherited {
		s += " " + strconv.Quote(in.name)
	}
	return s + ")"
}

// closeAll closes every socket and removes the socket files the master made.
func (t *listenerTable) closeAll() {
	for _, l := range t.order {
		_ = l.file.Close()
		l.sock.remove()
	}
	for _, in := range t.inherited {
		if !in.used {
			_ = in.file.Close()
		}
	}
}

// takeInherited claims the sockets passed by the service manager and the
// fd:N listeners before the master opens any descriptor of its own (its
// control socket could otherwise get a number meant for an inherited
// socket), and returns the keys of every configured listener.
func (m *Master) takeInherited() ([]string, error) {
	m.listeners.activate()
	keys, err := m.takeUpgrade()
	if err == nil && keys == nil {
		keys, err = m.listeners.expand(m.cfg.Listen)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("nothing to listen on")
	}
	for _, key := range keys {
		if spec, _ := ParseListen(key); spec.Form == FormFD {
			if _, err := m.listeners.get(key); err != nil {
				return nil, err
			}
		}
	}
	return keys, nil
}

// openListeners opens every configured listener before any worker starts,
// so that a busy port fails at once (as nginx does), and starts their
// acceptors under round-robin scheduling.
func (m *Master) openListeners(keys []string) error {
	for _, key := range keys {
		l, err := m.listeners.get(key)
		if err == nil && m.cfg.Sched == SchedRR {
			err = m.startAcceptor(key, l.file)
		}
		if err != nil {
			return err
		}
		m.log.Info("listening", "addr", l.addr, "form", l.form, "backlog", l.backlog, "sched", m.cfg.Sched)
		m.rpListen(l)
	}
	for _, in := range m.listeners.inherited {
		if !in.used {
			m.log.Warn("socket from the service manager not used", "name", in.name, "fd", in.fd, "addr", in.addr, "error", in.err)
		}
	}
	m.listenKeys = keys
	m.listeners.opened = true
	if max := somaxconn(); max > 0 && m.cfg.Sockets.backlog() > max {
		m.log.Warn("backlog above net.core.somaxconn: the kernel uses the lower value",
			"backlog", m.cfg.Sockets.backlog(), "somaxconn", max)
	}
	return nil
}

// somaxconn is the kernel's cap on accept queue lengths; 0 if unknown.
func somaxconn() int {
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

// listenEnv is the worker's ipc.EnvListen: the listeners it serves.
func listenEnv(keys []string) string {
	b, _ := json.Marshal(keys)
	return ipc.EnvListen + "=" + string(b)
}

// ListenerStatus describes one listening socket of the master.
type ListenerStatus struct {
	Listen  string `json:"listen"`  // the --listen value workers ask for
	Form    string `json:"form"`    // tcp, unix, abstract, fd or systemd
	Addr    string `json:"addr"`    // what it listens on
	Backlog int    `json:"backlog"` // accept queue length; 0: as inherited
}

func (t *listenerTable) status() []ListenerStatus {
	out := []ListenerStatus{}
	for _, l := range t.order {
		out = append(out, ListenerStatus{Listen: l.key, Form: l.form, Addr: l.addr, Backlog: l.backlog})
	}
	return out
}
