package master

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The new master's side of an upgrade (see upgrade.go): it takes the
// sockets the old master passed, starts its workers, and takes over the
// PID file and the control socket when the old master commits.

// handover is a new master's upgrade until the old master has committed.
type handover struct {
	ch        *os.File
	ctlPath   string
	readySent bool
	committed chan struct{} // closed at the commit
}

func newHandover(ch *os.File, ctlPath string) *handover {
	return &handover{ch: ch, ctlPath: ctlPath, committed: make(chan struct{})}
}

// takeUpgrade reads EnvUpgrade, if set, and removes it from the
// environment: the listeners become inherited sockets known by their key,
// and the listener keys the old master's workers served are returned.
func (m *Master) takeUpgrade() ([]string, error) {
	v, ok := os.LookupEnv(EnvUpgrade)
	if !ok {
		return nil, nil
	}
	_ = os.Unsetenv(EnvUpgrade)
	var env upgradeEnv
	if err := json.Unmarshal([]byte(v), &env); err != nil {
		return nil, fmt.Errorf("%s: %w", EnvUpgrade, err)
	}
	fds := []int{env.Channel, env.Control}
	for _, l := range env.Listeners {
		fds = append(fds, l.FD)
		for _, s := range l.Members {
			fds = append(fds, s.FD)
		}
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("%s: descriptor %d: %w", EnvUpgrade, fd, err)
		}
		unix.CloseOnExec(fd)
	}
	// Non-blocking, so that closing it ends a read in progress.
	if err := unix.SetNonblock(env.Channel, true); err != nil {
		return nil, os.NewSyscallError("set the upgrade channel non-blocking", err)
	}
	m.handover = newHandover(os.NewFile(uintptr(env.Channel), "upgrade"), env.ControlPath)
	if env.TicketKeys {
		m.takeTickets(m.handover.ch)
	}
	for _, l := range env.Listeners {
		m.listeners.inherited = append(m.listeners.inherited, &inherited{
			fd: l.FD, file: os.NewFile(uintptr(l.FD), l.Key), name: l.Key, key: l.Key,
			form: l.Form, sockFile: l.SockFile, backlog: l.Backlog, reuseport: l.Reuseport, addr: l.Addr,
		})
		if l.Reuseport {
			m.rpAdopt(l)
		}
	}
	f := os.NewFile(uintptr(env.Control), "control")
	ctl, err := net.FileListener(f) // a duplicate
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("control socket from the old master: %w", err)
	}
	uctl, ok := ctl.(*net.UnixListener)
	if !ok {
		_ = ctl.Close()
		return nil, fmt.Errorf("control socket from the old master is not a Unix socket")
	}
	uctl.SetUnlinkOnClose(false) // the old master serves it until the commit
	m.ctl, m.ctlPath = uctl, env.ControlPath
	m.generation = env.Generation
	if env.Admin > 0 {
		if _, err := unix.FcntlInt(uintptr(env.Admin), unix.F_GETFD, 0); err != nil {
			return nil, fmt.Errorf("%s: admin descriptor %d: %w", EnvUpgrade, env.Admin, err)
		}
		unix.CloseOnExec(env.Admin)
		m.adminFile = os.NewFile(uintptr(env.Admin), "admin")
	}
	if env.Workers > 0 {
		m.cfg.Workers = min(env.Workers, MaxWorkers)
	}
	m.log.Info("starting as an upgrade: waiting for every worker to serve before taking over", "pid", os.Getpid())
	return env.Keys, nil
}

// takeTickets reads the session ticket keys the old master passed as the
// channel's first line (see lineTickets). Without them the workers make
// new keys: sessions do not resume across the upgrade, nothing else fails.
func (m *Master) takeTickets(ch *os.File) {
	_ = ch.SetReadDeadline(time.Now().Add(ticketsReadTimeout))
	defer func() { _ = ch.SetReadDeadline(time.Time{}) }()
	var line []byte
	b := make([]byte, 1)
	for len(line) < maxTicketsLine { // a byte at a time: what follows is not ours to read
		n, err := ch.Read(b)
		if err != nil {
			m.log.Warn("no session ticket keys from the old master; sessions do not resume across the upgrade", "error", err)
			return
		}
		if n == 1 && b[0] == '\n' {
			break
		}
		line = append(line, b[:n]...)
	}
	keys, age, err := parseTicketsLine(string(line))
	if err != nil {
		m.log.Warn("no session ticket keys from the old master; sessions do not resume across the upgrade", "error", err)
		return
	}
	m.tickets, m.ticketsAt = keys, m.now().Add(-age)
}

// The tickets line is in the channel before the new master starts.
const (
	ticketsReadTimeout = 5 * time.Second
	maxTicketsLine     = 1024
)

// rpAdopt makes the reuseport group the old master passed this master's,
// with its sockets in the group's order.
func (m *Master) rpAdopt(l upgradeListener) {
	g := &rpGroup{key: l.Key, addr: l.Addr, opts: m.cfg.Sockets}
	for _, s := range l.Members {
		g.members = append(g.members, &rpSocket{slot: s.Slot, fd: s.FD, file: os.NewFile(uintptr(s.FD), l.Key)})
	}
	m.rp.groups[l.Key] = g
	m.rp.order = append(m.rp.order, g)
}

// rpForget closes the master's descriptors of the reuseport sockets after a
// handover, without shutting them down: the new master serves them, with
// their queued connections. The master steers them no more.
func (m *Master) rpForget() {
	if m.rp.tick != nil {
		m.rp.tick.Stop()
		m.rp.tick = nil
	}
	for _, g := range m.rp.order {
		for _, s := range g.members {
			_ = s.file.Close()
		}
	}
	m.rp.groups, m.rp.order = map[string]*rpGroup{}, nil
}

// adminListener is the --admin-listen socket: the old master's in an
// upgrade, which this master answers on only from the commit (its
// /readyz would fail before: its workers are not all ready), else bound
// to addr.
func (m *Master) adminListener(addr string) (net.Listener, error) {
	f := m.adminFile
	if f == nil || m.handover == nil {
		return net.Listen("tcp", addr)
	}
	m.adminFile = nil
	defer f.Close()
	ln, err := net.FileListener(f) // a duplicate
	if err != nil {
		return nil, err
	}
	return &gatedListener{Listener: ln, open: m.handover.committed, closed: make(chan struct{})}, nil
}

// gatedListener accepts only once open is closed.
type gatedListener struct {
	net.Listener
	open   <-chan struct{}
	closed chan struct{}
	once   sync.Once
}

func (g *gatedListener) Accept() (net.Conn, error) {
	select {
	case <-g.open:
		return g.Listener.Accept()
	case <-g.closed:
		return nil, net.ErrClosed
	}
}

// SyscallConn reaches the socket, for the next upgrade to pass it on.
func (g *gatedListener) SyscallConn() (syscall.RawConn, error) {
	sc, ok := g.Listener.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no descriptor", g.Listener)
	}
	return sc.SyscallConn()
}

func (g *gatedListener) Close() error {
	g.once.Do(func() { close(g.closed) })
	return g.Listener.Close()
}

// upgradeKey returns the unused inherited socket the old master served
// as key, if any.
func (t *listenerTable) upgradeKey(key string) *inherited {
	for _, in := range t.inherited {
		if in.key == key && !in.used {
			return in
		}
	}
	return nil
}

// handoverTick tells the old master once every slot serves.
func (m *Master) handoverTick() {
	h := m.handover
	if h == nil || h.readySent || m.stopping {
		return
	}
	v := m.poolView()
	if v.total == 0 || v.ready < v.total {
		return
	}
	h.readySent = true
	m.log.Info("every worker serves: telling the old master")
	if _, err := fmt.Fprintln(h.ch, lineReady); err != nil {
		m.log.Warn("the old master went away; taking over", "error", err)
		m.commitHandover()
		return
	}
	m.wg.Add(1)
	go m.awaitCommit(h)
}

// handoverFailed tells the old master why this one cannot start, if it is
// starting as an upgrade and *err says it cannot.
func (m *Master) handoverFailed(err *error) {
	if h := m.handover; h != nil && *err != nil {
		_, _ = fmt.Fprintln(h.ch, lineFailed, strings.ReplaceAll((*err).Error(), "\n", " "))
	}
}

// awaitCommit waits for the old master's commit. If it goes away before
// (it died), there is no one else to serve: this master takes over too.
func (m *Master) awaitCommit(h *handover) {
	defer m.wg.Done()
	sc := bufio.NewScanner(h.ch)
	for sc.Scan() {
		if sc.Text() == lineCommit {
			m.send(m.commitHandover)
			return
		}
	}
	m.send(func() {
		if m.handover == h {
			m.log.Warn("the old master went away before it committed the upgrade; taking over")
			m.commitHandover()
		}
	})
}

// commitHandover makes this master the one that serves: it writes the
// PID file, serves the control socket, speaks to the service manager,
// and tells the old master.
func (m *Master) commitHandover() {
	h := m.handover
	if h == nil {
		return
	}
	m.handover = nil
	m.publish() // the admin server answers from now on: with every worker ready
	close(h.committed)
	m.writePIDFile()
	m.ctl.SetUnlinkOnClose(true) // ours now: removed when this master stops
	m.serveControlSocket()
	if m.sd = newNotifier(m.log); m.sd != nil {
		// The old master sent READY=1 with our MAINPID.
		m.sd.started, m.sd.generation, m.sd.last = true, m.generation, m.poolView()
	}
	if _, err := fmt.Fprintln(h.ch, lineDone); err != nil {
		m.log.Debug("cannot tell the old master", "error", err)
	}
	_ = h.ch.Close()
	m.log.Info("upgrade committed: this master serves", "pid", os.Getpid(), "control", h.ctlPath)
}

// statSocketFile records the socket file at path, which the old master
// made and this master now removes when it stops.
func statSocketFile(path string) *socketFile {
	var st unix.Stat_t
	if unix.Lstat(path, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return nil
	}
	return &socketFile{path: path, dev: st.Dev, ino: st.Ino, ctime: st.Ctim}
}

// pidString is this process's pid as the PID file holds it.
func pidString() string { return strconv.Itoa(os.Getpid()) + "\n" }

// adoptUpgrade serves the socket the old master passed for key, with the
// form it had there and, for a Unix socket file it made, the duty to
// remove that file.
func (t *listenerTable) adoptUpgrade(key string, in *inherited) (*listener, error) {
	if in.reuseport { // bound, not listening: the group's sockets listen
		in.used = true
		l := &listener{key: key, form: in.form, addr: in.addr, file: in.file, reuseport: true, backlog: in.backlog}
		t.byKey[key] = l
		t.order = append(t.order, l)
		return l, nil
	}
	l, err := t.adopt(key, in.fd, in.file, in.form)
	if err != nil {
		return nil, fmt.Errorf("listen %s (from the old master): %w", key, err)
	}
	in.used = true
	if l.backlog == 0 {
		l.backlog = in.backlog
	}
	if in.sockFile {
		l.sock = statSocketFile(l.addr)
	}
	t.byKey[key] = l
	t.order = append(t.order, l)
	return l, nil
}
