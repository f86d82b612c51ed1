package httpcore

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// A loop is one event loop: an epoll instance, the listeners and
// connections registered with it, and everything they share. All of it is
// used by the loop goroutine only.
type loop struct {
	s     *Server
	h     Handler
	cfg   Config
	lim   limits
	log   hclog.Logger
	debug bool
	p     *poller

	lns    []*listener
	conns  []*conn // by file descriptor
	nconns int
	timers timerHeap

	rbuf    []byte // shared read buffer
	cbuf    []byte // shared read buffer for encoded input (Codec); nil until needed
	inPool  bufPool
	outPool bufPool
	date    dateCache
	req     *Request        // reused for every request
	w       *ResponseWriter // reused for every synchronous response
	// Writers of ended asynchronous responses, for the next request that
	// goes asynchronous (ReusingHandler).
	freeWriters []*ResponseWriter
	spare       []task // the other half of the task queue

	epoch     time.Time
	now       int64 // loop time: nanoseconds since epoch, never 0
	highWater int
	readied   bool // the loop made goroutines runnable this iteration

	streamBodies bool // the handler takes request bodies as they arrive (StreamingHandler)
	reuseWriters bool // ended asynchronous writers are reused (ReusingHandler)
	h2Preface    bool // the handler takes HTTP/2 prior-knowledge connections
	// userOnLoop is set while the loop goroutine runs a posted function,
	// which may write to any asynchronous response. Such writes must not
	// wait for room: only the loop can make it. (A write from another
	// goroutine meanwhile does not wait either; posted functions are
	// brief.) It says nothing of which goroutine writes, so it never lets
	// a writer touch the connection: asynchronous output always goes
	// through the relay. A handler after Async is marked on its writer
	// alone (ResponseWriter.serving).
	userOnLoop atomic.Bool

	draining     bool
	fatal        error // why the loop is draining on its own
	acceptResume int64 // loop time to re-register paused listeners; 0: not paused
	resumed      bool  // the listeners were re-registered at the end of the last iteration
	acceptTried  int64 // loop time of the last accept attempt
	shedTried    int64 // loop time passer.Shed was last asked
	holding      bool  // the pause is the gate's hold (not an accept failure's)
	gate         AcceptGate
	passer       AcceptPasser // gate, when it gives connections away; nil: it does not
	baton        *listener    // the loop's copy of gate.Baton(); nil: none
	acceptLogged int64        // loop time of the last accept-failure log

	st      Counters // published to the Server by publishStats
	statsAt int64    // loop time of the last publication

	in inliner // work run on the loop's goroutine, and who leads the loop
	// Connections whose output waits for the next response, made inline,
	// to go out with it (deferProcess); processed before the loop polls.
	deferred, spareDeferred []*conn
}

func newLoop(s *Server) (*loop, error) {
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	l := &loop{
		s:         s,
		h:         s.h,
		cfg:       s.cfg,
		lim:       newLimits(s.cfg),
		log:       s.cfg.Logger.Named("httpcore"),
		p:         p,
		rbuf:      make([]byte, readBufferSize),
		inPool:    bufPool{size: inPoolSize},
		outPool:   bufPool{size: outPoolSize},
		req:       newRequest(),
		epoch:     time.Now().Add(-time.Second), // so that loop time 0 can mean "none"
		highWater: highWater,
		gate:      s.cfg.AcceptGate,
	}
	l.passer, _ = l.gate.(AcceptPasser)
	l.debug = l.log.IsDebug()
	_, l.streamBodies = s.h.(StreamingHandler)
	_, l.reuseWriters = s.h.(ReusingHandler)
	if ph, ok := s.h.(HTTP2PrefaceHandler); ok {
		l.h2Preface = ph.HTTP2Preface()
	}
	l.w = newResponseWriter(l)
	l.in.init()
	if l.in.enabled {
		if err := p.openPark(); err != nil {
			p.close()
			return nil, err
		}
	}
	l.tick()
	return l, nil
}

// Serve runs one event loop over the listening sockets listenFDs, on the
// calling goroutine, or with GOMAXPROCS 1 on goroutines of its own (the
// loop moves to another while RunInline work blocks); it returns when the
// loop ends. It duplicates them (close-on-exec), makes them
// non-blocking (a flag the duplicates share with the originals: the
// caller's descriptors become non-blocking too; do not call (*os.File).Fd
// on them while serving, it would make them blocking again) and closes only
// its duplicates. Listeners are registered with EPOLLEXCLUSIVE and re-registered
// every 16 accepts so that processes sharing a socket share the load. With
// no listeners the loop serves only connections given to ServeConn.
//
// Serve returns nil after Shutdown has finished draining, ErrServerClosed if
// Shutdown came first, or the error that stopped the loop. A listener that
// fails for good is dropped and logged; when none is left the loop drains
// and Serve returns that error. Work posted after Serve returns is dropped.
func (s *Server) Serve(listenFDs []int) error {
	l, err := newLoop(s)
	if err != nil {
		return fmt.Errorf("httpcore: serve: %w", err)
	}
	if err := s.startServing(l.p.wakeFD); err != nil {
		l.p.close()
		return err
	}
	err = l.listen(listenFDs)
	if err == nil {
		l.log.Debug("serving", "listeners", len(l.lns))
		if l.in.enabled {
			// Inline work may block the goroutine that runs the loop for
			// as long as it likes (a hijacked connection's handler), so
			// this one only waits for whichever goroutine ends the loop.
			go l.lead()
			err = <-l.in.result
		} else {
			err = l.run()
		}
	}
	l.forceClose()
	l.in.ended()
	l.publishStats(true)
	s.stopServing() // no Post can reach the eventfd after this
	l.p.close()
	if err != nil {
		return fmt.Errorf("httpcore: serve: %w", err)
	}
	return nil
}

// run is the event loop. It returns when draining has closed the last
// connection, or on a failure of epoll itself.
func (l *loop) run() error {
	l.runTasks()
	for !l.draining || l.nconns > 0 {
		if l.catchUp() {
			return errLostLead
		}
		timeout := l.pollTimeout()
		if !l.s.startPoll() || l.in.head < len(l.in.work) || len(l.deferred) > 0 {
			timeout = 0 // work was posted or is queued: look, do not sleep
		}
		n, err := l.p.wait(timeout)
		l.s.endPoll()
		if err != nil {
			return err
		}
		l.tick()
		for i := 0; i < n; i++ {
			ev := l.p.events[i]
			l.handle(int(ev.Fd), ev.Events)
		}
		l.runTasks()
		l.runTimers()
		l.resumed = false
		l.resumeAccept()
		l.sweepAccept()
		l.shed()
		l.publishStats(false)
	}
	l.log.Debug("drained")
	return l.fatal
}

// catchUp runs inline work, lets the goroutines the loop made runnable run,
// and does what they posted (a handler's End, the usual case), over again
// while that makes more, for a bounded number of rounds, so that it is
// done without an epoll_wait between. It reports true if the loop was
// taken over while inline work blocked.
func (l *loop) catchUp() bool {
	for range maxCatchUp {
		if l.runInline() {
			return true
		}
		l.yieldIfReadied()
		if !l.runTasks() && l.in.head == len(l.in.work) && !l.processDeferred() {
			return false
		}
	}
	l.processDeferred()
	return false
}

// maxCatchUp bounds catchUp's rounds, so that a stream of posted work
// cannot keep the loop from its sockets.
const maxCatchUp = 16

// yieldIfReadied lets the goroutines the loop made runnable (handlers on
// the net/http pool, body readers, writers waiting for room) run before
// epoll_wait blocks the loop's thread: the runtime queues them on the
// loop's processor, where they would wait until the scheduler takes it
// back from the blocked thread (tens of microseconds or more).
func (l *loop) yieldIfReadied() {
	if l.readied {
		l.readied = false
		runtime.Gosched()
	}
}

// wake runs f, which makes goroutines waiting on the loop runnable: it
// signals a condition they wait on, cancels their context or starts one.
// It is the only way the loop wakes a goroutine, so that it always lets
// them run before it blocks (yieldIfReadied).
func (l *loop) wake(f func()) {
	f()
	l.readied = true
}

// tick reads the clock once per iteration: loop time, the Date line and
// Stats.LastTick.
func (l *loop) tick() {
	t := time.Now()
	l.now = int64(t.Sub(l.epoch))
	l.date.update(t)
	l.s.lastTick.Store(t.UnixNano())
}

// pollTimeout is how long epoll_wait may sleep: until the next deadline, at
// most maxPollWait, rounded up to whole milliseconds.
func (l *loop) pollTimeout() int {
	wait := int64(maxPollWait)
	if next, ok := l.timers.next(); ok {
		wait = min(wait, next-l.now)
	}
	if l.acceptResume != 0 {
		wait = min(wait, l.acceptResume-l.now)
	} else if l.gate != nil && len(l.lns) > 0 {
		wait = min(wait, l.acceptTried+int64(acceptSweep)-l.now)
	}
	if wait <= 0 {
		return 0
	}
	return int((wait + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

// handle dispatches one epoll event.
func (l *loop) handle(fd int, events uint32) {
	if fd == l.p.wakeFD {
		l.p.drainWake()
		return
	}
	if fd < len(l.conns) && l.conns[fd] != nil {
		l.onConnEvent(l.conns[fd], events)
		return
	}
	if l.baton != nil && fd == l.baton.fd {
		l.takeBaton()
		return
	}
	if ln := l.listener(fd); ln != nil {
		l.acceptConns(ln)
	}
}

// runTasks runs the work posted since the last iteration, in order, and
// reports whether there was any.
func (l *loop) runTasks() bool {
	tasks := l.s.takeTasks(l.spare)
	for i := range tasks {
		t := tasks[i]
		tasks[i] = task{}
		switch t.kind {
		case taskFunc:
			l.userOnLoop.Store(true)
			t.f()
			l.userOnLoop.Store(false)
		case taskEnd:
			l.endAsync(t.w)
		case taskTake:
			l.takeTask(t.w)
		case taskDrain:
			l.beginDrain()
		case taskForce:
			l.forceClose()
		case taskConn:
			if t.info.Codec != nil {
				l.adoptCodecConn(t.fd, t.info)
			} else {
				l.adoptConn(t.fd, t.info)
			}
		case taskHijack:
			l.wake(func() { t.reply <- l.hijack(t.w) })
		}
	}
	l.spare = tasks[:0]
	return len(tasks) > 0
}

// runTimers handles every connection whose deadline has passed.
func (l *loop) runTimers() {
	for c := l.timers.popExpired(l.now); c != nil; c = l.timers.popExpired(l.now) {
		l.onTimeout(c)
	}
}

// beginDrain stops accepting. Every connection closes after its current or
// next response (finish adds Connection: close); one that stays without a
// request for drainIdleGrace is closed then (see readDeadline).
func (l *loop) beginDrain() {
	if l.draining {
		return
	}
	l.draining = true
	l.closeListeners()
	l.s.stoppedAccepting()
	for _, c := range l.conns {
		if c != nil && c.idle() {
			l.setDeadline(c)
		}
	}
}

// forceClose closes the listeners and every connection now.
func (l *loop) forceClose() {
	l.beginDrain()
	for _, c := range l.conns {
		if c != nil {
			l.closeConn(c)
		}
	}
}

// track adds a new connection to the loop.
func (l *loop) track(c *conn) {
	for c.fd >= len(l.conns) {
		l.conns = append(l.conns, nil)
	}
	l.conns[c.fd] = c
	l.nconns++
	l.s.conns.Add(1)
	if l.gate != nil {
		l.gate.Conns(1)
	}
}

// closeConn closes c and forgets it. A response still being finished off
// the loop is dropped when it ends; its writers and body reader are told.
func (l *loop) closeConn(c *conn) {
	if c.state == connClosed {
		return
	}
	_ = l.p.del(c.fd) // explicit: a forked child may share the socket
	_ = unix.Close(c.fd)
	l.conns[c.fd] = nil
	l.timers.remove(c)
	l.releaseIn(c)
	l.releaseOut(c)
	c.setState(connClosed)
	l.dropBody(c, errBodyEOF)
	if c.file != nil {
		c.file.close()
		c.file = nil
	}
	if c.async != nil {
		c.async.rl.fail(l)
	}
	l.nconns--
	l.s.conns.Add(-1)
	if l.gate != nil {
		l.gate.Conns(-1)
	}
}
