// Package master is the supervising side of clusterd: it binds the
// listening sockets, starts worker processes by re-executing the program,
// hands them the sockets over the ipc channel, and keeps the pool healthy.
package master

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/internal/defaults"
	"github.com/clusterd/clusterd/internal/scoreboard"
)

// MaxWorkers bounds the pool: far more processes than any machine has
// cores, yet few enough that a typo (--workers 100000) cannot fork-bomb it.
const MaxWorkers = 1024

// Config configures a Master. Zero values take the defaults noted.
type Config struct {
	// Listen lists the listeners opened before any worker starts, in the
	// forms ParseListen accepts ("host:port", "[::1]:8080", "unix:/path",
	// "unix:@name", "fd:N", "systemd:NAME"). Empty: every socket the service
	// manager passed (LISTEN_FDS). Workers may ask for others.
	Listen []string
	// Sockets configures every listener: backlog, Unix socket file mode,
	// TCP options.
	Sockets SocketOptions
	// Workers is the pool size; default: the CPUs available to the process.
	Workers int
	// Sched is SchedShared (default), SchedRR or SchedReuseport.
	Sched string
	// RRPolicy chooses the worker for each connection under SchedRR:
	// RRPolicyRoundRobin (default) or RRPolicyLeastConns.
	RRPolicy string
	// GracefulTimeout bounds a worker's drain before SIGKILL; default
	// defaults.GracefulTimeout.
	GracefulTimeout time.Duration
	// ReadyTimeout bounds a new worker's start-up; default defaults.ReadyTimeout.
	ReadyTimeout time.Duration
	// WorkerTimeout: a ready worker silent this long is killed; default
	// defaults.WorkerTimeout.
	WorkerTimeout time.Duration
	// Control is the control socket's path; default: master-PID.sock in ControlDir().
	Control string
	// Command is the worker's argv; default: this executable, same arguments.
	Command []string
	// User and Group, when set, are who the workers run as (a name or a
	// number; Group defaults to User's primary group), with no
	// supplementary groups. The master must be started as root; it binds,
	// starts and stops the workers, and only root and User may use the
	// control socket.
	User, Group string
	// PIDFile, if set, is written with the master's pid at start (and by
	// a new master when an upgrade hands over to it), atomically, and
	// removed at stop.
	PIDFile string
	// Logger receives the master's and (forwarded) the workers' logs.
	Logger hclog.Logger
	// TicketKeys makes the master generate the workers' TLS session ticket
	// keys (crypto/rand), send them to every worker (ipc.TicketKeys) and
	// replace them every TicketRotate (default DefaultTicketRotate),
	// keeping the previous key for decryption: a session resumes on any
	// worker.
	TicketKeys   bool
	TicketRotate time.Duration
	// CheckReload, if set, runs before every rolling restart; an error
	// refuses the restart with that reason (say, a certificate on disk
	// that does not load) and the workers keep serving.
	CheckReload func() error
	// AdminListen, if set, is the address of the admin HTTP server
	// (/metrics, /healthz, /readyz), served by the master itself.
	AdminListen string
	// ShutdownDelay: on SIGTERM /readyz fails at once, and the workers
	// serve on this long before they drain; default 0.
	ShutdownDelay time.Duration
	// MaxRequests and MaxRSS (bytes), if set, recycle a worker that has
	// served that many requests or uses more memory: it is replaced as
	// in a rolling restart, one worker at a time.
	MaxRequests uint64
	MaxRSS      uint64
	// AccessLog is the workers' access log file, if any: when they run as
	// User, the master creates it and gives it to them.
	AccessLog string
}

func (c *Config) setDefaults() error {
	switch {
	case c.Sched == "":
		c.Sched = SchedShared
	case !slices.Contains(SchedModes, c.Sched):
		return fmt.Errorf("unknown scheduling %q: want one of %v", c.Sched, SchedModes)
	}
	switch {
	case c.RRPolicy == "":
		c.RRPolicy = RRPolicyRoundRobin
	case !slices.Contains(RRPolicies, c.RRPolicy):
		return fmt.Errorf("unknown round-robin policy %q: want one of %v", c.RRPolicy, RRPolicies)
	}
	if c.Workers <= 0 {
		c.Workers = min(runtime.GOMAXPROCS(0), MaxWorkers) // cgroup-aware since Go 1.25
	}
	if c.Workers > MaxWorkers {
		return fmt.Errorf("%d workers is more than the maximum of %d", c.Workers, MaxWorkers)
	}
	c.GracefulTimeout = orDefault(c.GracefulTimeout, defaults.GracefulTimeout)
	c.ReadyTimeout = orDefault(c.ReadyTimeout, defaults.ReadyTimeout)
	c.WorkerTimeout = orDefault(c.WorkerTimeout, defaults.WorkerTimeout)
	c.TicketRotate = orDefault(c.TicketRotate, DefaultTicketRotate)
	if len(c.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find own executable: %w", err)
		}
		c.Command = append([]string{exe}, os.Args[1:]...)
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{Name: "clusterd"})
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// event is work for the supervisor goroutine, sent by the goroutines that
// watch workers, accept connections and serve the control socket, and by
// timers. It runs with the supervisor's state to itself.
type event func()

// healthEvery is how often the supervisor checks the workers' deadlines.
const healthEvery = 250 * time.Millisecond

// Master supervises a pool of workers. Its state is owned by the goroutine
// running Run; everything else talks to it through events.
type Master struct {
	cfg       Config
	log       hclog.Logger
	spawner   spawner
	clock     clock
	listeners *listenerTable
	slots     map[int]*slot
	workers   map[*worker]struct{}
	events    chan event
	sigs      chan os.Signal
	done      chan struct{}
	wg        sync.WaitGroup

	generation  int // of the newest workers: 0 at start, +1 per rolling restart
	roll        *roll
	answers     []*rollAnswer // finished rolls waiting for the workers they replaced to stop accepting
	rr          *rrState
	rp          *rpState
	started     time.Time
	ctlPath     string
	sd          *notifier           // nil unless a service manager listens
	cred        *syscall.Credential // the workers' user; nil: the master's
	ctlGID      uint32              // with cred: the control socket's group
	pid1        bool                // reaps orphans (reap_linux.go)
	listenKeys  []string            // the listeners every worker serves, as it asks for them
	health      timer
	tickets     [][]byte // TLS session ticket keys, newest first
	ticketTimer timer
	ticketsAt   time.Time // when tickets[0] was made (by the old master, for inherited keys)

	stopping bool
	stats    *poolStats
	recycle  recycler
	delay    timer // the shutdown delay running; nil when none

	ctl        *net.UnixListener // the control socket
	upgrade    *upgrade          // an upgrade to a new master in progress (upgrade.go)
	handover   *handover         // this master starts as an upgrade, not yet committed
	handedOver bool              // a new master took over: leave it the socket files
	admin      *admin            // the --admin-listen server, if any
	adminFile  *os.File          // its socket, from the old master in an upgrade

	ctlErrLog *burst // control socket accept errors
	rrErrLog  *burst // rr accept and hand-off errors
	rrDropLog *burst // connections rr had to drop
	passLog   *burst // passed connections the master could not receive

	cpus      int               // GOMAXPROCS at start, which the workers share (the master's own may be 1)
	board     *scoreboard.Board // shared scheduling: the workers' open connections (scoreboard.go)
	boardFile *os.File          // its memory file, passed to each worker
	baton     *os.File          // the eventfd of its gates (scoreboard.NewBaton)
}

// New returns a Master for cfg.
func New(cfg Config) (*Master, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	cred, ctlGID, err := workerCredential(cfg.User, cfg.Group)
	if err == nil {
		err = giveLog(cfg.AccessLog, cred)
	}
	if err != nil {
		return nil, err
	}
	if cred != nil && cfg.Sockets.Owner == nil {
		// Unix socket files belong to the workers' user, as the files a
		// service under that user would create.
		cfg.Sockets.Owner = &SocketOwner{UID: int(cred.Uid), GID: int(cred.Gid)}
	}
	m := newMaster(cfg, execSpawner{command: cfg.Command, cred: cred}, realClock{})
	m.cred, m.ctlGID = cred, ctlGID
	return m, nil
}

func newMaster(cfg Config, sp spawner, clk clock) *Master {
	return &Master{
		cfg:       cfg,
		log:       cfg.Logger,
		spawner:   sp,
		clock:     clk,
		listeners: newListenerTable(cfg.Sockets, cfg.Sched == SchedReuseport),
		slots:     map[int]*slot{},
		workers:   map[*worker]struct{}{},
		events:    make(chan event, 256),
		sigs:      make(chan os.Signal, 8),
		rr:        newRRState(),
		rp:        newRPState(),
		done:      make(chan struct{}),
		ctlErrLog: newBurst(time.Second),
		rrErrLog:  newBurst(time.Second),
		rrDropLog: newBurst(time.Second),
		passLog:   newBurst(time.Minute),
		stats:     newPoolStats(),
		cpus:      runtime.GOMAXPROCS(0),
	}
}

func (m *Master) now() time.Time { return m.clock.Now() }

// Run binds the listeners, starts the pool and supervises it until a stop
// signal has been handled. It returns an error only when it cannot start.
func (m *Master) Run() (err error) {
	defer m.listeners.closeAll()
	defer m.handoverFailed(&err)
	keys, err := m.takeInherited()
	if err != nil {
		return err
	}
	if m.ctl == nil { // else inherited in an upgrade
		if m.ctl, err = m.listenControl(m.cfg.Control); err != nil {
			return err
		}
	}
	ctl := m.ctl
	adm, err := m.startAdmin() // a busy port fails the start before anything else
	if err != nil {
		_ = ctl.Close()
		return err
	}
	m.admin = adm
	defer adm.close()
	if err := m.openListeners(keys); err != nil {
		m.stopAccepting()
		_ = ctl.Close()
		return err
	}
	m.log.Info("control socket", "path", m.ctlPath)
	if m.handover == nil {
		m.writePIDFile()
		m.serveControlSocket()
		m.sd = newNotifier(m.log)
	}
	m.openBoard()
	defer m.closeBoard()
	if m.cfg.Sched == SchedRR && os.Getenv("GOMAXPROCS") == "" {
		// The master's rr work is a chain of hand-offs between goroutines
		// (accept, dispatch, the workers' answers), each a few system
		// calls: on one P they pass without waking another thread. With
		// wrk -H 'Connection: close' against 2 workers, its CPU time per
		// new connection fell from 16-19 us to 14.6-15.7 us.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	}
	signal.Notify(m.sigs, handledSignals...)
	if m.pid1 = os.Getpid() == 1; m.pid1 {
		signal.Notify(m.sigs, syscall.SIGCHLD)
	}
	defer signal.Stop(m.sigs)
	m.start()
	m.loop()
	m.shutdown()
	if !m.handedOver {
		if err := ctl.Close(); err != nil { // removes the socket file, if this master serves it
			m.log.Warn("closing the control socket", "error", err)
		}
		m.removePIDFile()
	}
	m.wg.Wait()
	m.log.Info("stopped")
	return nil
}

// start fills the pool and starts the health checks.
func (m *Master) start() {
	m.started = m.now()
	m.log.Info("starting workers", "count", m.cfg.Workers, "pid", os.Getpid())
	m.startTickets()
	for id := 1; id <= m.cfg.Workers; id++ {
		s := &slot{id: id}
		m.slots[id] = s
		m.fill(s)
	}
	m.scheduleHealth()
}

// scheduleHealth runs the next health check in healthEvery.
func (m *Master) scheduleHealth() {
	m.health = m.clock.AfterFunc(healthEvery, func() {
		m.send(func() {
			m.checkHealth(m.now())
			m.reapOrphans()
			if !m.finished() {
				m.scheduleHealth()
			}
		})
	})
}

// finished reports whether the supervisor has nothing left to do.
func (m *Master) finished() bool { return m.stopping && len(m.workers) == 0 }

func (m *Master) loop() {
	for !m.finished() {
		select {
		case ev := <-m.events:
			ev()
		case sig := <-m.sigs:
			m.signal(sig)
		}
		m.notifyServiceManager()
		m.handoverTick()
	}
}

// serveControlSocket starts answering the control socket.
func (m *Master) serveControlSocket() {
	m.wg.Add(1)
	go m.serveControl(m.ctl)
}

// shutdown ends the goroutines the supervisor fed; events still on their
// way are dropped (send closes the descriptors they carry).
func (m *Master) shutdown() {
	m.health.Stop()
	if m.ticketTimer != nil {
		m.ticketTimer.Stop()
	}
	m.stopAccepting()
	m.rpCloseAll()
	close(m.done)
	if m.handover != nil { // ends awaitCommit
		_ = m.handover.ch.Close()
	}
}

// send delivers ev to the supervisor unless it has finished; then the
// descriptors ev would have taken over are closed.
func (m *Master) send(ev event, files ...*os.File) {
	select {
	case m.events <- ev:
	case <-m.done:
		for _, f := range files {
			_ = f.Close()
		}
	}
}

// sendOrDone is send for a caller that closes what ev would have taken
// when it reports false: the supervisor is gone.
func (m *Master) sendOrDone(ev event) bool {
	select {
	case m.events <- ev:
		return true
	case <-m.done:
		return false
	}
}

func (m *Master) signal(sig os.Signal) {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		if m.stopping || m.delay != nil {
			m.log.Warn("second stop signal: stopping now", "signal", sig)
			m.stopNow("second stop signal")
			return
		}
		if sig == syscall.SIGTERM && m.delayStop() {
			return
		}
		m.log.Info("graceful stop", "signal", sig)
		m.stopGracefully()
	case syscall.SIGQUIT:
		m.log.Info("immediate stop", "signal", sig)
		m.stopNow("immediate stop")
	case syscall.SIGHUP:
		m.reloadSignal()
	case syscall.SIGUSR2:
		m.bySignal("upgrade", "SIGUSR2", m.startUpgrade)
	case syscall.SIGTTIN, syscall.SIGTTOU:
		n := len(m.slots) + 1
		if sig == syscall.SIGTTOU {
			n = len(m.slots) - 1
		}
		if err := m.scale(n); err != nil {
			m.log.Warn("scale refused", "signal", sig, "error", err)
		}
	case syscall.SIGUSR1:
		m.reopenLogs()
	case syscall.SIGPIPE:
		// Whoever read our output went away; the log lines are lost, the
		// master lives on.
	case syscall.SIGCHLD:
		m.reapOrphans()
	}
}

// bySignal starts what a signal asks for (a reload, an upgrade), with no
// one to answer but the log: a refusal is logged as a warning.
func (m *Master) bySignal(what, signal string, start func(reply chan<- response) error) {
	if err := start(nil); err != nil {
		m.log.Warn(what+" refused", "signal", signal, "error", err)
	}
}
