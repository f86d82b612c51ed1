package master

// Master binary upgrade (`clusterd ctl upgrade`, SIGUSR2): the running
// ("old") master hands its listening sockets and its control socket to a
// new master running the binary now on disk, and exits once the new one's
// workers serve.
//
// Why a child and not exec in place: execve replaces the running master
// for good. If the new binary cannot start (a bad build, a missing
// library, a config it rejects), there is nothing left to fall back to,
// and the workers lose their master. Started as a child, the new master
// can fail in any way and the old one, still holding every socket,
// kills it and serves on; nothing changed. The cost is that the master's
// PID changes, so the service manager must be told: the old master sends
// sd_notify MAINPID=<new> (it is still the main PID when it does, so
// NotifyAccess=main suffices), and the new master rewrites --pid-file
// atomically. The new master is reparented to init (or to the nearest
// subreaper) when the old one exits; under systemd, MAINPID is what the
// service manager tracks.
//
// Steps, each with a way back:
//
//  1. The old master runs the new binary with the same arguments and
//     EnvCheck=1: it parses its flags and checks its configuration
//     without binding (as `clusterd check` does) and exits. A failure
//     ends the upgrade with the line it printed.
//  2. It starts the new binary as a child in a process group of its own,
//     with EnvUpgrade describing the inherited descriptors: a readiness
//     channel, the control socket and every listener, by the --listen key
//     the workers ask for (LISTEN_FDS cannot be used: LISTEN_PID must name
//     the child, whose pid exec cannot know in advance). Unix socket files
//     stay where they are; the new master removes them when it stops. The
//     channel's first line carries the TLS session ticket keys, so that
//     sessions resume across the upgrade (never the environment, which
//     other processes of the user may read).
//  3. The new master starts its workers; once every slot serves it says
//     "ready". If it exits first, or is not ready within --ready-timeout,
//     the old master kills its process group and keeps serving.
//  4. The old master answers "commit"; the new master rewrites the PID
//     file, serves the control socket and answers "done". The old master
//     then sends MAINPID=, stops answering the control socket (leaving its
//     file for the new master), drains its workers and exits 0.
//
// Under reuseport scheduling every slot's socket passes too, in the
// group's order, and the old master only closes its descriptors of them:
// a socket shut down would take its queued connections with it.
//
// An upgrade is refused while another one, a rolling restart or a
// reuseport scale-down runs, and in a master running as PID 1, whose exit
// would end its PID namespace.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// Environment of the processes the old master starts for an upgrade.
const (
	// EnvCheck set to 1 asks the program to check its flags and
	// configuration, print "configuration ok" or the reason, and exit 0
	// or 1, without binding or starting anything.
	EnvCheck = "CLUSTERD_CHECK"
	// EnvUpgrade tells a new master what it inherits from the old one: a
	// JSON upgradeEnv.
	EnvUpgrade = "CLUSTERD_UPGRADE"
)

// The lines of the readiness channel between the masters.
const (
	lineReady  = "ready"  // new → old: every worker serves
	lineCommit = "commit" // old → new: take over
	lineDone   = "done"   // new → old: PID file and control socket taken over
	lineFailed = "failed" // new → old: "failed REASON", it cannot start
)

// checkOK is what a successful check prints: a binary that exits 0
// without it did not check anything (it predates EnvCheck).
const checkOK = "configuration ok"

// upgradeEnv is EnvUpgrade's value.
type upgradeEnv struct {
	Channel     int               `json:"channel"`      // the readiness channel's descriptor
	Control     int               `json:"control"`      // the control socket's descriptor
	ControlPath string            `json:"control_path"` // and its path
	Keys        []string          `json:"keys"`         // the listeners every worker serves
	Listeners   []upgradeListener `json:"listeners"`
	Admin       int               `json:"admin,omitempty"` // the --admin-listen socket's descriptor
	Generation  int               `json:"generation"`      // of the new master's first workers
	Workers     int               `json:"workers"`         // the pool size, as scaled since the start
	// TicketKeys: the channel's first line passes the session ticket keys
	// (lineTickets); the keys themselves never go in the environment.
	TicketKeys bool   `json:"ticket_keys,omitempty"`
	tickets    string // that line
}

// upgradeListener is one inherited listening socket.
type upgradeListener struct {
	Key      string `json:"key"` // the --listen value workers ask for
	FD       int    `json:"fd"`
	Form     string `json:"form"`
	Backlog  int    `json:"backlog,omitempty"`   // as the old master set it; 0: as inherited
	SockFile bool   `json:"sock_file,omitempty"` // the master removes its socket file when it stops
	// Reuseport: FD is the bound base socket of a reuseport group, whose
	// listening sockets are Members, in the group's order.
	Reuseport bool            `json:"reuseport,omitempty"`
	Addr      string          `json:"addr,omitempty"`
	Members   []upgradeMember `json:"members,omitempty"`
}

// upgradeMember is a worker slot's socket of a reuseport group.
type upgradeMember struct {
	Slot int `json:"slot"`
	FD   int `json:"fd"`
}

// errUpgrading refuses a reload or a second upgrade while one runs.
var errUpgrading = errors.New("a master upgrade is in progress; try again when it has finished")

// upgrade is an upgrade in progress, as the old master sees it.
type upgrade struct {
	pid     int // the new master's, once started
	started time.Time
	waiters []chan<- response
	abort   chan string // the supervisor gives up: the reason
}

// startUpgrade begins a master upgrade. reply, if not nil, receives the
// outcome when it ends.
func (m *Master) startUpgrade(reply chan<- response) error {
	switch {
	case m.stopping:
		return errStopping
	case m.upgrade != nil:
		return errUpgrading
	case m.roll != nil:
		return errRolling
	case m.handover != nil:
		return errors.New("this master is itself starting as an upgrade; try again when it serves")
	case m.pid1:
		return errors.New("the master is PID 1, whose exit would end every process of its PID namespace; restart the container instead")
	case m.ctl == nil:
		return errors.New("no control socket to hand over")
	case len(m.rp.leaving) > 0:
		return errors.New("a scale-down is still moving connections off its sockets; try again in a moment")
	}
	files, env, err := m.upgradeFiles()
	if err != nil {
		return fmt.Errorf("upgrade: %w", err)
	}
	u := &upgrade{started: m.now(), abort: make(chan string, 1)}
	if reply != nil {
		u.waiters = append(u.waiters, reply)
	}
	m.upgrade = u
	m.log.Info("master upgrade", "binary", m.cfg.Command[0])
	m.wg.Add(1)
	go m.runUpgrade(u, files, env)
	return nil
}

// upgradeFiles duplicates the descriptors the new master inherits and
// describes them: files[i] becomes fd 4+i, after the readiness channel's
// end, which startNewMaster puts at fd 3.
// Duplicates made here keep the sockets' blocking mode untouched when
// exec hands them over (see rawfd).
func (m *Master) upgradeFiles() ([]*os.File, upgradeEnv, error) {
	env := upgradeEnv{Channel: 3, Control: 4, ControlPath: m.ctlPath, Keys: m.listenKeys,
		Generation: m.generation + 1, Workers: len(m.slots), TicketKeys: len(m.tickets) > 0, tickets: m.ticketsLine()}
	var files []*os.File
	fail := func(err error) ([]*os.File, upgradeEnv, error) {
		closeFiles(files)
		return nil, env, err
	}
	ctlFD, err := dupListener(m.ctl)
	if err != nil {
		return fail(fmt.Errorf("control socket: %w", err))
	}
	files = append(files, os.NewFile(uintptr(ctlFD), "control"))
	for _, l := range m.listeners.order {
		fd, err := rawfd.DupFile(l.file)
		if err != nil {
			return fail(fmt.Errorf("listener %s: %w", l.key, err))
		}
		files = append(files, os.NewFile(uintptr(fd), l.key))
		ul := upgradeListener{Key: l.key, FD: 3 + len(files), Form: l.form, Backlog: l.backlog,
			SockFile: l.sock != nil, Reuseport: l.reuseport, Addr: l.addr}
		if g := m.rp.groups[l.key]; l.reuseport && g != nil {
			for _, s := range g.members {
				fd, err := rawfd.Dup(s.fd)
				if err != nil {
					return fail(fmt.Errorf("listener %s, worker %d: %w", l.key, s.slot, err))
				}
				files = append(files, os.NewFile(uintptr(fd), l.key))
				ul.Members = append(ul.Members, upgradeMember{Slot: s.slot, FD: 3 + len(files)})
			}
		}
		env.Listeners = append(env.Listeners, ul)
	}
	if m.admin != nil {
		fd, err := dupListener(m.admin.ln)
		if err != nil {
			return fail(fmt.Errorf("admin listener: %w", err))
		}
		files = append(files, os.NewFile(uintptr(fd), "admin"))
		env.Admin = 3 + len(files)
	}
	return files, env, nil
}

// dupListener returns a close-on-exec duplicate of ln's descriptor.
func dupListener(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", ln)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	nfd, derr := -1, error(nil)
	if err := rc.Control(func(fd uintptr) { nfd, derr = rawfd.Dup(int(fd)) }); err != nil {
		return -1, err
	}
	return nfd, derr
}

// runUpgrade checks and starts the new master, waits for it, and reports
// the outcome to the supervisor (upgradeFinished).
func (m *Master) runUpgrade(u *upgrade, files []*os.File, env upgradeEnv) {
	defer m.wg.Done()
	pid, err := m.upgradeSteps(u, files, env)
	m.send(func() { m.upgradeFinished(u, pid, err) })
}

func (m *Master) upgradeSteps(u *upgrade, files []*os.File, env upgradeEnv) (int, error) {
	defer closeFiles(files)
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ReadyTimeout)
	defer cancel()
	if err := checkBinary(ctx, m.cfg.Command); err != nil {
		return 0, err
	}
	nm, err := startNewMaster(m.cfg.Command, files, env)
	if err != nil {
		return 0, err
	}
	m.send(func() { u.pid = nm.pid() })
	m.log.Info("new master started", "pid", nm.pid())
	err = m.awaitNewMaster(ctx, u, nm)
	if err != nil {
		nm.kill()
	}
	return nm.pid(), err
}

// upgradeAbort ends an upgrade in progress; the new master is killed.
func (m *Master) upgradeAbort(reason string) {
	if u := m.upgrade; u != nil {
		select {
		case u.abort <- "upgrade aborted: " + reason:
		default:
		}
	}
}

// upgradeFinished runs on the supervisor once the upgrade has ended. On
// success it hands the service over and drains its workers.
func (m *Master) upgradeFinished(u *upgrade, pid int, err error) {
	m.upgrade = nil
	resp := response{OK: err == nil}
	if err != nil {
		resp.Error = err.Error()
		m.log.Error("master upgrade failed; serving on", "error", err)
		m.writePIDFile() // in case the new master wrote it
	} else {
		resp.Message = fmt.Sprintf("upgraded: new master pid %d serves; pid %d drains its workers and exits", pid, os.Getpid())
		m.log.Info("master upgrade done: handing over", "new_pid", pid,
			"took", m.now().Sub(u.started).Round(time.Millisecond))
		m.handOver(pid)
	}
	for _, c := range u.waiters {
		c <- resp
	}
	if err == nil {
		m.stopGracefully()
	}
}

// handOver leaves the service to the new master pid: the service manager
// is told, and the control and Unix socket files are left in place.
func (m *Master) handOver(pid int) {
	if m.sd != nil {
		m.sd.notify("MAINPID=" + strconv.Itoa(pid) + "\nREADY=1")
		m.sd = nil // from now on the new master speaks for the service
	}
	m.handedOver = true
	for _, l := range m.listeners.order {
		l.sock = nil
	}
	m.rpForget()
	m.ctl.SetUnlinkOnClose(false)
	if err := m.ctl.Close(); err != nil {
		m.log.Warn("closing the control socket", "error", err)
	}
	// The admin socket is the new master's too: stop accepting on it. A
	// request already accepted is answered as the service's: ready.
	m.stats.handedOver.Store(true)
	m.admin.stopAccepting()
}
