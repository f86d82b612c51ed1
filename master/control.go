package master

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// Request is one command on the control socket: a JSON line.
type Request struct {
	Cmd string `json:"cmd"`         // CmdStatus, CmdReload, CmdUpgrade, CmdScale or CmdStop
	N   int    `json:"n,omitempty"` // for scale
	// WaitMS is how long the client waits for each line of the answer, in
	// milliseconds; the master says a long command is still running at
	// least twice as often (default: every controlPending).
	WaitMS int64 `json:"wait_ms,omitempty"`
}

// pendingEvery is how often the client of r hears that its command is
// still running.
func (r Request) pendingEvery() time.Duration {
	d := controlPending
	if r.WaitMS > 0 {
		d = min(d, time.Duration(r.WaitMS)*time.Millisecond/2)
	}
	return max(d, 10*time.Millisecond)
}

// Response answers a Request: a JSON line.
type Response = response

type response struct {
	OK      bool    `json:"ok"`
	Error   string  `json:"error,omitempty"`
	Message string  `json:"message,omitempty"`
	Status  *Status `json:"status,omitempty"`
	// Pending: the command is still running; the answer follows.
	Pending bool `json:"pending,omitempty"`
}

// request is a Request on its way to the supervisor.
type request struct {
	Request
	reply chan response
}

// Control connections: a client must send its request within
// controlReadTimeout and read each answer line within controlWriteTimeout.
// At most maxSilentControl connections may wait for their request at
// once; the next one accepted closes the oldest of them. A flood of silent
// clients therefore holds a bounded number of descriptors, each for a
// bounded time, and never keeps a real client waiting behind it: a client
// that sends its request at once is never the oldest silent one.
const (
	controlReadTimeout  = 2 * time.Second
	controlWriteTimeout = 2 * time.Second
	// controlAcceptRetryMax bounds the pause between control accepts at the
	// descriptor limit.
	controlAcceptRetryMax = 50 * time.Millisecond
	maxSilentControl      = 64
	// controlPending is how often a client waiting for a long command (a
	// reload) is told that it is still in progress.
	controlPending = time.Second
)

// unixAcceptor is what serveControl accepts from: a *net.UnixListener.
type unixAcceptor interface {
	AcceptUnix() (*net.UnixConn, error)
}

// silentConns holds the control connections that have not sent their
// request yet, oldest first.
type silentConns struct {
	mu    sync.Mutex
	conns []*net.UnixConn
}

// add records c and returns the oldest connection to close if there are
// now more than maxSilentControl.
func (s *silentConns) add(c *net.UnixConn) *net.UnixConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.conns = append(s.conns, c)
	if len(s.conns) <= maxSilentControl {
		return nil
	}
	oldest := s.conns[0]
	s.conns = slices.Delete(s.conns, 0, 1)
	return oldest
}

// spoke forgets c: it sent its request, or it is done.
func (s *silentConns) spoke(c *net.UnixConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if i := slices.Index(s.conns, c); i >= 0 {
		s.conns = slices.Delete(s.conns, i, i+1)
	}
}

// serveControl accepts control connections until ln is closed. At the
// descriptor limit it accepts with its reserve descriptor (spareFD), and
// takes the reserve back once a descriptor is free again; without one, a
// failed accept is retried after a pause, as net/http's Server does, and
// logged once per burst.
func (m *Master) serveControl(ln unixAcceptor) {
	defer m.wg.Done()
	var silent silentConns
	// An operator waits on a control connection: retry often (a failed
	// accept costs a few microseconds).
	retry := acceptRetry{max: controlAcceptRetryMax}
	spare := newSpareFD()
	defer spare.release()
	for {
		spare.refill()
		c, err := ln.AcceptUnix()
		if err != nil && isFdLimit(err) && spare.take() {
			c, err = ln.AcceptUnix()
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if !m.acceptFailed(m.ctlErrLog, &retry, "control socket: accept failed, retrying", err) {
				return
			}
			continue
		}
		retry.reset()
		if oldest := silent.add(c); oldest != nil {
			m.log.Debug("control connection: closing the oldest silent one")
			_ = oldest.Close() // its reader fails and gives up
		}
		m.wg.Add(1)
		go m.serveControlConn(c, &silent)
	}
}

func (m *Master) serveControlConn(c *net.UnixConn, silent *silentConns) {
	defer m.wg.Done()
	defer c.Close()
	defer silent.spoke(c)
	reply := func(r response) {
		err := c.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
		if err == nil {
			err = json.NewEncoder(c).Encode(r)
		}
		if err != nil {
			m.log.Debug("control connection: cannot answer", "error", err)
		}
	}
	if err := checkPeer(c, m.controlUID()); err != nil {
		m.log.Warn("control connection refused", "error", err)
		reply(response{Error: err.Error()})
		return
	}
	if err := c.SetReadDeadline(time.Now().Add(controlReadTimeout)); err != nil {
		m.log.Warn("control connection: cannot bound it; closing it", "error", err)
		return
	}
	line, err := bufio.NewReader(&limited{c, 4096}).ReadBytes('\n')
	silent.spoke(c)
	var req Request
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err != nil {
		reply(response{Error: "bad request: " + err.Error()})
		return
	}
	r := &request{Request: req, reply: make(chan response, 1)}
	select {
	case m.events <- func() { m.control(r) }:
	case <-m.done:
		reply(response{Error: errStopping.Error()})
		return
	}
	tick := time.NewTicker(req.pendingEvery())
	defer tick.Stop()
	for {
		select {
		case resp := <-r.reply:
			reply(resp)
			return
		case <-tick.C:
			reply(response{OK: true, Pending: true})
		case <-m.done:
			reply(response{Error: "the master stopped"})
			return
		}
	}
}

// limited reads at most n bytes.
type limited struct {
	c *net.UnixConn
	n int
}

func (l *limited) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errors.New("request too long")
	}
	p = p[:min(len(p), l.n)]
	n, err := l.c.Read(p)
	l.n -= n
	return n, err
}

// control runs a control request on the supervisor goroutine.
func (m *Master) control(r *request) {
	m.log.Debug("control request", "cmd", r.Cmd, "n", r.N)
	var err error
	switch r.Cmd {
	case CmdStatus:
		r.reply <- response{OK: true, Status: m.status()}
		return
	case CmdReload:
		if err = m.startRoll(r.reply); err == nil {
			return // the roll answers when it ends
		}
	case CmdUpgrade:
		if err = m.startUpgrade(r.reply); err == nil {
			return // the upgrade answers when it ends
		}
	case CmdScale:
		if err = m.scale(r.N); err == nil {
			r.reply <- response{OK: true, Message: fmt.Sprintf("scaled to %d workers", r.N)}
			return
		}
	case CmdStop:
		if !m.stopping {
			m.log.Info("graceful stop", "by", "control socket")
			m.stopGracefully()
		}
		r.reply <- response{OK: true, Message: "stopping"}
		return
	default:
		err = fmt.Errorf("unknown command %q", r.Cmd)
	}
	r.reply <- response{Error: err.Error()}
}
