// Package worker is the worker side of clusterd: it talks to the master
// over the inherited ipc channel, receives the listening sockets, serves
// them from an httpcore event loop, heartbeats, and drains and exits when
// the master asks or goes away.
package worker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/defaults"
	"github.com/clusterd/clusterd/internal/rawfd"
	"github.com/clusterd/clusterd/ipc"
	"github.com/clusterd/clusterd/tlsconn"
)

// Timing of the worker side of the protocol.
const (
	heartbeatEvery = time.Second
	replyTimeout   = 10 * time.Second
	// orphanTimeout bounds the drain when the master has disappeared: no
	// one supervises the worker any more, so it must not linger.
	orphanTimeout = time.Second
)

// Config configures a worker.
type Config struct {
	// Listen lists the addresses to serve; the master supplies each socket.
	Listen []string
	// HTTP configures the event loop.
	HTTP httpcore.Config
	// GracefulTimeout bounds a drain the master asked for; default
	// defaults.GracefulTimeout.
	GracefulTimeout time.Duration
	// Logger logs as JSON to stderr by default, which the master forwards.
	Logger hclog.Logger
	// TLS, when set, serves the listeners in TLSListen (keys as in Listen)
	// over TLS beside the event loop (package tlsconn), with the session
	// ticket keys the master sends.
	TLS       *tls.Config
	TLSListen []string
	// OnShutdown functions are called, each on a goroutine of its own, when
	// the worker starts draining (httpcore.Server.RegisterOnShutdown).
	OnShutdown []func()
	// AccessLog is a file to append a line per response to, "-" for
	// standard output, "" for none; AccessLogFormat is AccessLogCommon
	// (default) or AccessLogJSON. SIGUSR1 reopens the file.
	AccessLog       string
	AccessLogFormat string
}

// Info identifies the running worker process.
type Info struct {
	ID         int // the worker's slot, 1..N, kept by its replacements
	Generation int // the pool generation: 0 at start, +1 per rolling restart
	PID        int
}

// IsWorker reports whether this process was started by a clusterd master
// (and Run has not yet taken the variables the master set).
func IsWorker() bool { return os.Getenv(ipc.EnvWorkerID) != "" }

// Worker is the running worker, as its handler sees it.
type Worker struct {
	info Info
	srv  *httpcore.Server
}

// Info identifies the worker process; zero for a nil Worker (outside a worker).
func (w *Worker) Info() Info {
	if w == nil {
		return Info{}
	}
	return w.info
}

// Requests is how many requests this worker has served; 0 outside a worker.
func (w *Worker) Requests() uint64 {
	if w == nil || w.srv == nil {
		return 0
	}
	return w.srv.Stats().Requests
}

// identify reads and removes the variables the master set.
func identify() (Info, int, error) {
	id, err1 := strconv.Atoi(os.Getenv(ipc.EnvWorkerID))
	gen, err2 := strconv.Atoi(os.Getenv(ipc.EnvGeneration))
	fd, err3 := strconv.Atoi(os.Getenv(ipc.EnvFD))
	for _, k := range []string{ipc.EnvWorkerID, ipc.EnvGeneration, ipc.EnvFD} {
		_ = os.Unsetenv(k)
	}
	if err := errors.Join(err1, err2, err3); err != nil || id <= 0 || fd < 3 {
		return Info{}, 0, fmt.Errorf("worker: bad environment from master: %v", err)
	}
	return Info{ID: id, Generation: gen, PID: os.Getpid()}, fd, nil
}

// Run serves h as a worker until the master asks it to stop (returns nil)
// or goes away. It must be called only in a process started by a master.
func Run(cfg Config, h httpcore.Handler) error {
	return RunFunc(cfg, func(*Worker) httpcore.Handler { return h })
}

// RunFunc is Run for the handler newHandler returns for this worker, for
// handlers that tell which worker they run in (its id, its request count).
func RunFunc(cfg Config, newHandler func(*Worker) httpcore.Handler) error {
	info, fd, err := identify()
	if err != nil {
		return err
	}
	if cfg.Listen, err = listenFromMaster(cfg.Listen); err != nil {
		return err
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr, Level: hclog.Info})
	}
	if cfg.GracefulTimeout <= 0 {
		cfg.GracefulTimeout = defaults.GracefulTimeout
	}
	f := os.NewFile(uintptr(fd), "ipc")
	conn, err := ipc.NewConn(f)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	defer conn.Close()
	gate, ps := openBoard(cfg.Logger, conn)
	if cfg.HTTP.AcceptGate != nil { // the caller's own
		ps.stop()
		ps = nil
	} else if gate != nil {
		cfg.HTTP.AcceptGate = gate
	}
	defer ps.stop() // before the channel closes: the last passes go through it
	p := &proc{cfg: cfg, conn: conn, log: cfg.Logger, self: &Worker{info: info}, passer: ps}
	return p.run(newHandler)
}

type proc struct {
	cfg    Config
	conn   *ipc.Conn
	log    hclog.Logger
	srv    *httpcore.Server
	self   *Worker
	access *accessLog // nil without an access log
	passer *passer    // reuseport scheduling: passes connections to the master; nil: none

	tls     *tlsconn.Server
	tickets [][32]byte // from the master, for a TLS server yet to start
}

func (p *proc) run(newHandler func(*Worker) httpcore.Handler) error {
	// The master drives the stop; ^C in a terminal is for the master alone.
	signal.Ignore(syscall.SIGINT, syscall.SIGHUP)
	// SIGUSR1 reopens the access log; the master passes it on to every worker.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	defer dumpOnQuit(p.self.info.ID)()
	// stderr is a pipe to the master: once the master is gone, a log line
	// would raise SIGPIPE and kill the worker before it drains. Caught (not
	// ignored, which programs it starts would inherit), a write just fails.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	defer signal.Stop(pipe)
	if err := p.conn.Send(ipc.Message{Type: ipc.Online, PID: os.Getpid()}); err != nil {
		return err
	}
	if p.cfg.AccessLog != "" {
		format := p.cfg.AccessLogFormat
		if format == "" {
			format = AccessLogCommon
		}
		var err error
		if p.access, err = newAccessLog(p.cfg.AccessLog, format, p.self.info.ID, p.log); err != nil {
			return err
		}
		defer p.access.Close() // after the loop has ended: every line is written
		p.cfg.HTTP.OnResponse = p.access.Record
	}
	files, tlsFiles, err := p.queryListeners()
	if err != nil {
		return err
	}
	p.srv = httpcore.NewServer(p.cfg.HTTP, newHandler(p.self))
	if p.passer != nil {
		p.passer.serve = func(fd int) error { return p.serveConn(fd, true) } // idle ones
	}
	for _, f := range p.cfg.OnShutdown {
		p.srv.RegisterOnShutdown(f)
	}
	p.self.srv = p.srv
	fds, err := rawfd.All(files)
	if err != nil {
		return err
	}
	if err := p.serveTLS(tlsFiles); err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(fds) }()
	for _, addr := range p.cfg.Listen {
		if err := p.conn.Send(ipc.Message{Type: ipc.Listening, Key: addr}); err != nil {
			return err
		}
	}
	if err := p.conn.Send(ipc.Message{Type: ipc.Ready}); err != nil {
		return err
	}
	err = p.supervised(served, usr1)
	for _, f := range files {
		_ = f.Close()
	}
	return err
}

// queryListeners asks the master for each listener in turn and returns
// the loop's and the TLS ones. Under round-robin scheduling the master keeps
// a listener to itself and sends connections instead.
func (p *proc) queryListeners() (plain, tlsFiles []*os.File, err error) {
	for _, addr := range p.cfg.Listen {
		f, err := p.query(addr)
		if err == nil && f == nil && p.isTLS(addr) {
			err = fmt.Errorf("worker: TLS listener %s needs a scheduling that passes the socket, not rr", addr)
		}
		if err != nil {
			for _, f := range append(plain, tlsFiles...) {
				_ = f.Close()
			}
			return nil, nil, err
		}
		switch {
		case f == nil:
		case p.isTLS(addr):
			tlsFiles = append(tlsFiles, f)
		default:
			plain = append(plain, f)
		}
	}
	return plain, tlsFiles, nil
}

func (p *proc) query(addr string) (*os.File, error) {
	if err := p.conn.Send(ipc.Message{Type: ipc.QueryServer, Addr: addr}); err != nil {
		return nil, err
	}
	if err := p.conn.SetReadDeadline(time.Now().Add(replyTimeout)); err != nil {
		return nil, fmt.Errorf("worker: %w", err)
	}
	defer p.conn.SetReadDeadline(time.Time{})
	msg, files, err := p.conn.Recv()
	for err == nil && msg.Type == ipc.TicketKeys {
		p.setTicketKeys(msg)
		msg, files, err = p.conn.Recv()
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("worker: waiting for listener %s: %w", addr, err)
	case msg.Type != ipc.ServerReply:
		return nil, fmt.Errorf("worker: got %v while waiting for listener %s", msg.Type, addr)
	case msg.Err != "":
		return nil, fmt.Errorf("worker: master cannot provide listener %s: %s", addr, msg.Err)
	case msg.RR:
		return nil, nil
	}
	return files[0], nil
}

// supervised serves until the master asks for a drain, a SIGTERM arrives,
// or the master disappears, then drains and waits for the loop to end.
func (p *proc) supervised(served <-chan error, usr1 <-chan os.Signal) error {
	fromMaster := make(chan error, 2) // a drain, then the end of the channel
	go p.listenMaster(fromMaster)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	defer signal.Stop(term)
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	for {
		select {
		case err := <-served:
			return fmt.Errorf("worker: event loop stopped: %w", err)
		case err := <-fromMaster:
			if err == nil {
				return p.drain(served, p.cfg.GracefulTimeout, "master asked")
			}
			p.log.Warn("lost the master, draining", "error", err)
			return p.drain(served, orphanTimeout, "master gone")
		case <-term:
			return p.drain(served, p.cfg.GracefulTimeout, "SIGTERM")
		case <-beat.C:
			p.heartbeat()
		case <-usr1:
			if p.access != nil {
				p.access.Reopen()
			}
		}
	}
}

// listenMaster reports nil on a drain request, and the error that ended
// the channel (io.EOF: the master is gone). After a drain request it goes
// on reading: the master still answers passes and hands off connections
// (which a draining loop refuses).
func (p *proc) listenMaster(out chan<- error) {
	drain := false
	for {
		msg, fds, err := p.conn.RecvFDs()
		switch {
		case errors.As(err, new(*ipc.FrameError)) && msg.Type == ipc.Handoff:
			// Its connections did not arrive (this worker is at its fd
			// limit, which may last): the master passes them on and logs
			// what it drops, once in a while, so no line for each here.
			p.log.Debug("refusing a hand-off whose descriptors did not arrive", "seq", msg.Seq, "error", err)
			p.refuseHandoff(msg, err)
		case errors.As(err, new(*ipc.FrameError)):
			p.log.Warn("bad message from master", "error", err)
		case err != nil:
			out <- err
			return
		case msg.Type == ipc.Drain:
			if !drain {
				drain = true
				out <- nil
			}
		case msg.Type == ipc.PassReply && p.passer != nil:
			p.passer.settle(msg)
		case msg.Type == ipc.Handoff:
			p.serveHandoff(msg, fds)
		case msg.Type == ipc.TicketKeys:
			p.setTicketKeys(msg)
		default:
			p.log.Warn("unexpected message from master", "type", msg.Type)
			for _, fd := range fds {
				_ = unix.Close(fd)
			}
		}
	}
}

// serveHandoff gives the connections the master accepted to the event
// loop and tells the master, in one reply, which it serves; a draining
// loop refuses them, and the master passes them to another worker.
func (p *proc) serveHandoff(msg ipc.Message, fds []int) {
	reply := ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq, N: msg.N}
	for i, fd := range fds {
		if err := p.serveConn(fd, msg.Idle); err != nil {
			reply.Err = err.Error()
			reply.Refused = append(reply.Refused, msg.Seq+uint64(i))
		}
	}
	// The loop counts the connections it has opened; those just posted to
	// it are on their way.
	reply.Connections = p.srv.Stats().Connections + int64(len(fds)-len(reply.Refused))
	if err := p.conn.Send(reply); err != nil {
		p.log.Warn("cannot answer a hand-off", "seq", msg.Seq, "error", err)
	}
}

// refuseHandoff tells the master that none of a Handoff's connections
// are served here.
func (p *proc) refuseHandoff(msg ipc.Message, why error) {
	reply := ipc.Message{Type: ipc.HandoffReply, Seq: msg.Seq, N: msg.N, Err: why.Error(),
		Connections: p.srv.Stats().Connections}
	if err := p.conn.Send(reply); err != nil {
		p.log.Warn("cannot answer a hand-off", "seq", msg.Seq, "error", err)
	}
}

// serveConn hands the loop the connection fd, or closes it; idle says it
// is a keep-alive connection between requests that was served elsewhere
// (httpcore.ConnInfo.Idle).
func (p *proc) serveConn(fd int, idle bool) error {
	if err := p.srv.ServeConnInfo(fd, httpcore.ConnInfo{Idle: idle}); err != nil {
		_ = unix.Close(fd)
		return err
	}
	return nil
}

// heartbeat tells the master how long ago the event loop last turned (it
// turns at least once a second); the master replaces a worker whose loop
// has been silent for --worker-timeout, or that sends nothing at all.
func (p *proc) heartbeat() {
	p.sendStats(false)
}

// sendStats sends a heartbeat with the loop's statistics; final says the
// loop has ended, so they will not change any more.
func (p *proc) sendStats(final bool) {
	st := p.srv.Stats()
	ws := p.report(st)
	ws.Final = final
	msg := ipc.Message{
		Type: ipc.Heartbeat, LoopAge: time.Since(st.LastTick),
		Requests: st.Requests, Connections: st.Connections, Stats: ws,
	}
	if final {
		msg.LoopAge = 0
	}
	if err := p.conn.Send(msg); err != nil { // the master replaces a worker it does not hear from
		p.log.Warn("cannot send a heartbeat", "error", err)
	}
}

func (p *proc) drain(served <-chan error, timeout time.Duration, why string) error {
	p.log.Debug("draining", "why", why, "timeout", timeout)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	tlsDone := p.shutdownTLS(ctx) // handshakes first, so their clients are served
	shut := make(chan error, 1)
	go func() { shut <- p.srv.Shutdown(ctx) }()
	select {
	case <-p.srv.NotAccepting():
		if err := p.conn.Send(ipc.Message{Type: ipc.Stopped}); err != nil {
			p.log.Debug("cannot tell the master this worker stopped accepting", "error", err)
		}
	case <-ctx.Done():
	}
	err := errors.Join(<-shut, <-tlsDone)
	serr := <-served
	p.sendStats(true) // the master keeps the final counts of the workers it retires
	if serr != nil {
		return serr
	}
	if err != nil {
		p.log.Warn("drain cut short", "why", why, "error", err)
	}
	return nil
}
