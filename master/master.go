// Package master is the supervising side of clusterd: it binds the
// listening sockets, starts worker processes by re-executing the program,
// hands them the sockets over the ipc channel, and keeps the pool healthy.
package master

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/ipc"
)

// MaxWorkers bounds the pool: far more processes than any machine has
// cores, yet few enough that a typo (--workers 100000) cannot fork-bomb it.
const MaxWorkers = 1024

// Config configures a Master. Zero values take the defaults noted.
type Config struct {
	// Listen lists the addresses bound before any worker starts
	// ("host:port"; IPv6 as "[::1]:8080"). Workers may ask for others.
	Listen []string
	// Workers is the pool size; default: the CPUs available to the process.
	Workers int
	// Sched is SchedShared (default) or SchedRR.
	Sched string
	// GracefulTimeout bounds a worker's drain before SIGKILL; default 30s.
	GracefulTimeout time.Duration
	// ReadyTimeout bounds a new worker's start-up; default 10s.
	ReadyTimeout time.Duration
	// WorkerTimeout: a ready worker silent this long is killed; default 30s.
	WorkerTimeout time.Duration
	// Control is the control socket's path; default: master-PID.sock in ControlDir().
	Control string
	// Command is the worker's argv; default: this executable, same arguments.
	Command []string
	// Logger receives the master's and (forwarded) the workers' logs.
	Logger hclog.Logger
	// AdminListen, if set, is the address of the admin HTTP server
	// (/metrics, /healthz, /readyz), served by the master itself.
	AdminListen string
	// ShutdownDelay: on SIGTERM /readyz fails at once, and the workers
	// serve on this long before they drain; default 0.
	ShutdownDelay time.Duration
}

func (c *Config) setDefaults() error {
	switch c.Sched {
	case "":
		c.Sched = SchedShared
	case SchedShared, SchedRR:
	default:
		return fmt.Errorf("unknown scheduling %q: want %s or %s", c.Sched, SchedShared, SchedRR)
	}
	if c.Workers <= 0 {
		c.Workers = min(runtime.GOMAXPROCS(0), MaxWorkers) // cgroup-aware since Go 1.25
	}
	if c.Workers > MaxWorkers {
		return fmt.Errorf("%d workers is more than the maximum of %d", c.Workers, MaxWorkers)
	}
	c.GracefulTimeout = orDefault(c.GracefulTimeout, 30*time.Second)
	c.ReadyTimeout = orDefault(c.ReadyTimeout, 10*time.Second)
	c.WorkerTimeout = orDefault(c.WorkerTimeout, 30*time.Second)
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

// event is what the per-worker goroutines and timers tell the supervisor.
type event struct {
	w        *worker
	msg      *ipc.Message
	files    []*os.File
	exited   bool
	err      error
	respawn  *slot
	ctl      *request
	accepted bool // files[0] is a connection the master accepted (rr)
	stopDue  bool // the shutdown delay is over
}

// Master supervises a pool of workers. Its state is owned by the goroutine
// running Run; everything else talks to it through events.
type Master struct {
	cfg       Config
	log       hclog.Logger
	listeners *listenerTable
	slots     map[int]*slot
	workers   map[*worker]struct{}
	events    chan event
	done      chan struct{}
	wg        sync.WaitGroup

	generation int // of the newest workers: 0 at start, +1 per rolling restart
	roll       *roll
	rr         *rrState
	started    time.Time
	ctlPath    string

	stopping bool
	stats    *poolStats
	delay    *time.Timer // the shutdown delay running; nil when none

	ctlErrLog *burst // control socket accept errors
	rrErrLog  *burst // rr accept and hand-off errors
	rrDropLog *burst // connections rr had to drop
}

// New returns a Master for cfg.
func New(cfg Config) (*Master, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Master{
		cfg:       cfg,
		log:       cfg.Logger,
		listeners: newListenerTable(),
		slots:     map[int]*slot{},
		workers:   map[*worker]struct{}{},
		events:    make(chan event, 256),
		rr:        newRRState(),
		done:      make(chan struct{}),
		ctlErrLog: newBurst(time.Second),
		rrErrLog:  newBurst(time.Second),
		rrDropLog: newBurst(time.Second),
		stats:     newPoolStats(),
	}, nil
}

// Run binds the listeners, starts the pool and supervises it until a stop
// signal has been handled. It returns an error only when it cannot start.
func (m *Master) Run() error {
	defer m.listeners.closeAll()
	ctl, err := m.listenControl(m.cfg.Control)
	if err != nil {
		return err
	}
	for _, addr := range m.cfg.Listen {
		f, err := m.listeners.get("tcp", addr)
		if err == nil && m.cfg.Sched == SchedRR {
			err = m.startAcceptor(Key("tcp", addr), f)
		}
		if err != nil {
			m.stopAccepting()
			_ = ctl.Close()
			return err
		}
		m.log.Info("listening", "addr", m.listeners.Addr(Key("tcp", addr)), "sched", m.cfg.Sched)
	}
	m.log.Info("control socket", "path", m.ctlPath)
	adm, err := m.startAdmin()
	if err != nil {
		m.stopAccepting()
		_ = ctl.Close()
		return err
	}
	defer adm.close()
	m.wg.Add(1)
	go m.serveControl(ctl)
	m.started = time.Now()
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT,
		syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR1,
		// Without this a write to a closed stdout or stderr (a log reader
		// that went away) would kill the master, and with it the pool.
		syscall.SIGPIPE)
	defer signal.Stop(sigs)

	m.log.Info("starting workers", "count", m.cfg.Workers, "pid", os.Getpid())
	for id := 1; id <= m.cfg.Workers; id++ {
		s := &slot{id: id}
		m.slots[id] = s
		m.fill(s)
	}
	m.loop(sigs)
	m.stopAccepting()
	close(m.done)
	_ = ctl.Close() // removes the socket file
	m.wg.Wait()
	m.log.Info("stopped")
	return nil
}

func (m *Master) loop(sigs <-chan os.Signal) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for !m.stopping || len(m.workers) > 0 {
		select {
		case ev := <-m.events:
			m.handle(ev)
		case sig := <-sigs:
			m.signal(sig)
		case now := <-tick.C:
			m.checkHealth(now)
		}
	}
}

// send delivers ev to the supervisor unless it has finished.
func (m *Master) send(ev event) {
	select {
	case m.events <- ev:
	case <-m.done:
		for _, f := range ev.files {
			_ = f.Close()
		}
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
	}
}
