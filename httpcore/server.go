package httpcore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// A Server runs one event loop serving HTTP/1.1 with a Handler.
type Server struct {
	cfg Config
	h   Handler

	mu          sync.Mutex
	state       serverState
	tasks       []task // posted work, run by the loop in order
	wakeFD      int    // the loop's eventfd while serving, else -1
	wakePending bool   // an eventfd wakeup is on its way
	polling     bool   // the loop sleeps in epoll_wait, or is about to
	draining    bool   // Shutdown has asked the loop to drain
	done        chan struct{}

	notAccepting     chan struct{} // closed once the loop accepts no more (NotAccepting)
	notAcceptingOnce sync.Once

	onShutdown []func()    // run when Shutdown begins
	hijacked   hijackedSet // connections taken out with Hijack, still open

	requests atomic.Uint64
	conns    atomic.Int64
	lastTick atomic.Int64 // unix nanoseconds

	statsMu  sync.Mutex
	counters Counters // as the loop last published them
	gauges   Gauges
}

// serverState is where a Server is in its life:
//
//	serverIdle    -> serverServing (Serve), serverClosed (Shutdown)
//	serverServing -> serverClosed (Serve returns)
//	serverClosed  is terminal.
type serverState uint8

const (
	serverIdle serverState = iota
	serverServing
	serverClosed
)

// A task is work for the loop.
type task struct {
	kind  taskKind
	f     func()
	w     *ResponseWriter
	fd    int
	info  ConnInfo           // taskConn
	reply chan<- hijackReply // taskHijack
}

type taskKind uint8

const (
	taskFunc   taskKind = iota // run f
	taskEnd                    // finish the asynchronous response w
	taskTake                   // write out what the asynchronous response w handed over
	taskDrain                  // Shutdown: stop accepting, drain connections
	taskForce                  // Shutdown's context ended: close everything
	taskConn                   // serve the connection fd
	taskHijack                 // take w's connection out of the loop
)

// Stats are counters of a Server.
type Stats struct {
	Requests    uint64    // responses completed, including the engine's error responses
	Connections int64     // connections open now
	LastTick    time.Time // last loop iteration; the loop wakes at least once a second
	// Counters and Gauges are as the loop last published them: at most
	// 100ms of loop time old while it serves, final once Serve has returned.
	Counters Counters
	Gauges   Gauges
}

// NewServer returns a Server that answers requests with h; a nil h answers
// every request with 404.
func NewServer(cfg Config, h Handler) *Server {
	if h == nil {
		h = HandlerFunc(notFound)
	}
	return &Server{cfg: cfg.withDefaults(), h: h, wakeFD: -1, done: make(chan struct{}), notAccepting: make(chan struct{})}
}

// NotAccepting returns a channel that is closed once the server accepts no
// more connections: Shutdown has begun and the loop has closed its
// listeners, or the server is done. A process handing its work over to
// another (a rolling restart) can say so then, though it still finishes
// the requests it has.
func (s *Server) NotAccepting() <-chan struct{} { return s.notAccepting }

func (s *Server) stoppedAccepting() { s.notAcceptingOnce.Do(func() { close(s.notAccepting) }) }

func notFound(w *ResponseWriter, _ *Request) {
	w.WriteHeader(404)
	_, _ = w.WriteString("404 page not found\n")
}

// Stats returns the server's counters. It is safe from any goroutine.
func (s *Server) Stats() Stats {
	st := Stats{Requests: s.requests.Load(), Connections: s.conns.Load()}
	if t := s.lastTick.Load(); t != 0 {
		st.LastTick = time.Unix(0, t)
	}
	s.statsMu.Lock()
	st.Counters, st.Gauges = s.counters, s.gauges
	s.statsMu.Unlock()
	return st
}

// Post runs f on the loop goroutine soon, in the order posted. It is safe
// from any goroutine. Before Serve, f waits for the loop to start; after Serve
// has returned, f is dropped. f runs like a handler: it must not block, and
// a panic in it is not recovered.
func (s *Server) Post(f func()) { s.post(task{kind: taskFunc, f: f}) }

// ServeConn hands the loop a connection accepted elsewhere, e.g. by the
// master under round-robin scheduling. It is safe from any goroutine. On
// success the server owns fd: it is made non-blocking and close-on-exec,
// served like an accepted connection and closed when done. While the server
// is draining or closed ServeConn returns ErrServerClosed and fd stays the
// caller's.
func (s *Server) ServeConn(fd int) error { return s.ServeConnInfo(fd, ConnInfo{}) }

// ConnInfo describes a connection handed to ServeConnInfo by a layer that
// accepted it and talked to the client first, such as a TLS terminator
// passing the client's socket after the handshake, with a Codec.
type ConnInfo struct {
	// Peer is the client's address for Request.RemoteAddr; "" asks the
	// socket.
	Peer string
	// Accepted is when the client connected: the first request head is
	// due HeaderTimeout after it, so time spent before the hand-over (a
	// TLS handshake) counts against it. Zero means now.
	Accepted time.Time
	// EvenDraining serves the connection even while the server drains
	// (its first response then carries Connection: close), for one whose
	// client cannot be sent to another server; only a closed server
	// refuses it.
	EvenDraining bool
	// Codec, if not nil, decodes what is read from the socket and encodes
	// what is written to it (see Codec).
	Codec Codec
	// Idle says the connection is a keep-alive connection between
	// requests that was served elsewhere until now (one an AcceptPasser
	// gave away): its next request is due IdleTimeout after the hand-over,
	// as after a response, and it does not count in Counters.Accepted
	// (it was counted where it was accepted). Accepted is then ignored.
	Idle bool
}

// ServeConnInfo is ServeConn for a connection described by info.
func (s *Server) ServeConnInfo(fd int, info ConnInfo) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == serverClosed || s.draining && !info.EvenDraining {
		return ErrServerClosed
	}
	s.tasks = append(s.tasks, task{kind: taskConn, fd: fd, info: info})
	s.wakeLocked()
	return nil
}

// postEnd hands an ended asynchronous response to the loop.
func (s *Server) postEnd(w *ResponseWriter) { s.post(task{kind: taskEnd, w: w}) }

func (s *Server) post(t task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == serverClosed {
		dropTask(t)
		return
	}
	s.tasks = append(s.tasks, t)
	s.wakeLocked()
}

// dropTask releases what a task that will never run owns: a connection
// given to ServeConn, a file given to SendFile.
func dropTask(t task) {
	switch t.kind {
	case taskConn:
		closeConnFD(t.fd)
	case taskEnd:
		t.w.dropFile()
	case taskHijack:
		t.reply <- hijackReply{err: ErrConnClosed}
	}
}

// wakeLocked wakes the loop if it sleeps in epoll_wait, unless a wakeup
// is already pending. An awake loop needs none: it looks at the tasks
// before it sleeps (startPoll), which saves the eventfd's write, read and
// epoll wakeup on every response finished off the loop. The eventfd is
// written under s.mu so it cannot be closed under our feet.
func (s *Server) wakeLocked() {
	if s.wakeFD >= 0 && s.polling && !s.wakePending {
		s.wakePending = true
		wakeEventfd(s.wakeFD)
	}
}

// startPoll notes that the loop is about to sleep in epoll_wait, and
// reports true, unless tasks are queued: then it must not sleep.
func (s *Server) startPoll() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.tasks) > 0 {
		return false
	}
	s.polling = true
	return true
}

// endPoll notes that the loop is awake again.
func (s *Server) endPoll() {
	s.mu.Lock()
	s.polling = false
	s.mu.Unlock()
}

// takeTasks swaps the task queue with spare and returns the queued tasks.
func (s *Server) takeTasks(spare []task) []task {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tasks
	s.tasks = spare[:0]
	s.wakePending = false
	return t
}

// RegisterOnShutdown registers f to be called, on a goroutine of its own,
// when Shutdown begins, as net/http's Server.RegisterOnShutdown does: the
// place to tell long-lived hijacked connections (WebSockets) to close.
// Call it before Serve.
func (s *Server) RegisterOnShutdown(f func()) {
	s.mu.Lock()
	s.onShutdown = append(s.onShutdown, f)
	s.mu.Unlock()
}

// Shutdown stops the server gracefully. It is safe from any goroutine and
// may be called more than once. The loop stops accepting at once (its
// listener duplicates are closed), closes idle connections, and lets
// requests in flight finish, including asynchronous ones; each of those
// responses carries Connection: close and its connection is closed after
// it. The first call runs the functions given to RegisterOnShutdown.
// Shutdown returns nil once every connection is closed, hijacked ones
// included, and Serve has returned. If ctx ends first, the remaining
// connections, hijacked ones too, are closed at once and, after Serve has
// returned, Shutdown returns ctx.Err().
//
// Shutdown before Serve makes Serve return ErrServerClosed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	var hooks []func()
	switch s.state {
	case serverIdle:
		s.state = serverClosed
		close(s.done)
		s.mu.Unlock()
		s.stoppedAccepting()
		return nil
	case serverServing:
		if !s.draining {
			s.draining = true
			hooks = s.onShutdown
			s.tasks = append(s.tasks, task{kind: taskDrain})
			s.wakeLocked()
		}
	}
	s.mu.Unlock()
	for _, f := range hooks {
		go f()
	}
	if s.waitDrained(ctx) {
		return nil
	}
	s.post(task{kind: taskForce})
	<-s.done
	s.closeHijacked()
	return ctx.Err()
}

// waitDrained waits until the loop has finished and no hijacked
// connection is open, polling the latter with a back-off as net/http's
// Shutdown polls idle connections. It reports false if ctx ended first.
func (s *Server) waitDrained(ctx context.Context) bool {
	select {
	case <-s.done:
	case <-ctx.Done():
		select {
		case <-s.done: // drained just in time
		default:
			return false
		}
	}
	wait := time.Millisecond
	for s.HijackedConns() > 0 {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return s.HijackedConns() == 0
		case <-t.C:
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
	return true
}

// startServing moves the server to serverServing with the loop's eventfd.
func (s *Server) startServing(wakeFD int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case serverClosed:
		return ErrServerClosed
	case serverServing:
		return ErrServing
	}
	s.state = serverServing
	s.wakeFD = wakeFD
	if len(s.tasks) > 0 {
		s.wakeLocked()
	}
	return nil
}

// stopServing marks the server closed once the loop has finished.
func (s *Server) stopServing() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.state = serverClosed
	s.wakeFD = -1
	for _, t := range s.tasks {
		dropTask(t)
	}
	s.tasks = nil
	close(s.done)
	s.stoppedAccepting()
}
