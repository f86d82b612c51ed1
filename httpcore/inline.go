package httpcore

import (
	"errors"
	"runtime"
	"sync/atomic"
)

// Running work on the loop's goroutine (ResponseWriter.RunInline).
//
// With one processor (GOMAXPROCS 1) handing a request to another goroutine
// and its response back costs two goroutine switches and the scheduler's
// bookkeeping, more than a small handler itself. So the loop runs such work
// itself, between batches of events, where it holds no state on its stack.
// Work may block (a database call, a body still arriving, a slow client):
// then the loop must go on elsewhere. A standby goroutine is made runnable
// before the work starts; it runs only when the work blocks or is preempted
// (there is one processor), and then takes the loop over and carries on
// where the work's goroutine left it. That goroutine finishes the work as
// an ordinary one, and its response goes out through the asynchronous path
// as it would from any goroutine.
//
// Who leads the loop is one atomic word: a generation (bumped by every
// takeover) and a phase. The leader alone moves owned <-> inline and
// back to idle; the standby moves inline -> owned of the next generation.
// A leader whose compare-and-swap back to owned fails has lost the loop
// and must not touch it again.

const (
	leadIdle   = 0 // no inline work is running; the standby sleeps
	leadOwned  = 1 // the leader runs the loop's own code
	leadInline = 2 // the leader runs inline work
	leadPhase  = 3
	leadGen    = 4 // one generation
)

// Standby states.
const (
	standbyNone    = 0 // no standby goroutine
	standbyWaiting = 1 // parked on wake
	standbyAwake   = 2 // runnable, watching the lead word
)

// errLostLead is returned by run when another goroutine took the loop over.
var errLostLead = errors.New("httpcore: loop taken over")

// inliner holds the loop's inline work and who leads the loop.
type inliner struct {
	enabled bool     // GOMAXPROCS was 1 when the loop started
	work    []func() // queued, run in order from head
	head    int

	word    atomic.Uint64 // generation<<2 | phase
	standby atomic.Int32
	wake    chan struct{} // one token for a waiting standby; closed when the loop has ended
	result  chan error    // the loop's end, for a Serve that lost the lead
}

func (in *inliner) init() {
	in.enabled = runtime.GOMAXPROCS(0) == 1
	in.wake = make(chan struct{}, 1)
	in.result = make(chan error, 1)
}

// RunInline runs f as if by a go statement, but, when it can, on the
// loop's goroutine, once the loop has handled its current batch of events:
// a goroutine switch and a wake-up are saved. It can when the server
// started serving with GOMAXPROCS 1 (on more processors the loop would be
// taken from it at once); otherwise it reports false and does nothing. f
// may block: the loop then goes on on another goroutine. f must not assume
// it runs on the loop: it uses the response as from any goroutine, after
// Async. Call RunInline from ServeHTTP.
func (w *ResponseWriter) RunInline(f func()) bool {
	in := &w.l.in
	if !in.enabled {
		return false
	}
	in.work = append(in.work, f)
	return true
}

// runInline runs the queued inline work. It reports true if the loop was
// taken over meanwhile: the caller has lost the loop.
func (l *loop) runInline() bool {
	in := &l.in
	if in.head == len(in.work) {
		return false
	}
	gen := in.word.Load() &^ leadPhase
	in.word.Store(gen | leadOwned)
	l.callStandby()
	for in.head < len(in.work) {
		f := in.work[in.head]
		in.work[in.head] = nil
		in.head++
		in.word.Store(gen | leadInline)
		f()
		if !in.word.CompareAndSwap(gen|leadInline, gen|leadOwned) {
			return true
		}
	}
	in.work, in.head = in.work[:0], 0
	in.word.Store(gen | leadIdle)
	return false
}

// callStandby makes sure a standby goroutine is runnable.
func (l *loop) callStandby() {
	in := &l.in
	for {
		switch s := in.standby.Load(); s {
		case standbyAwake:
			return
		case standbyWaiting:
			if in.standby.CompareAndSwap(s, standbyAwake) {
				in.wake <- struct{}{} // never blocks: only a waiting standby takes it
				return
			}
		case standbyNone:
			if in.standby.CompareAndSwap(s, standbyAwake) {
				go l.stand()
				return
			}
		}
	}
}

// stand is the standby goroutine: it takes the loop over from a leader
// blocked in inline work, and sleeps while no inline work runs.
func (l *loop) stand() {
	in := &l.in
	for {
		w := in.word.Load()
		switch w & leadPhase {
		case leadInline:
			if !in.word.CompareAndSwap(w, w&^leadPhase+leadGen|leadIdle) {
				continue
			}
			// This goroutine leads now; the next batch calls another standby.
			in.standby.Store(standbyNone)
			l.lead()
			return
		case leadOwned:
			runtime.Gosched() // the leader was preempted between pieces of work
			continue
		}
		// Idle: sleep until the next inline batch.
		in.standby.Store(standbyWaiting)
		if in.word.Load()&leadPhase != leadIdle && in.standby.CompareAndSwap(standbyWaiting, standbyAwake) {
			continue // a batch began before we were waiting
		}
		if _, ok := <-in.wake; !ok {
			return // the loop has ended
		}
	}
}

// lead runs the loop on a goroutine that took it over, to its end or
// until it is taken over in turn.
func (l *loop) lead() {
	err := l.run()
	if err == errLostLead {
		return
	}
	l.in.result <- err
}

// ended stops the standby once the loop has returned for good, and starts
// work that was queued but never run on goroutines of its own.
func (in *inliner) ended() {
	// Late leaders' swaps fail, and none is left to send on wake.
	in.word.Store(in.word.Load()&^leadPhase + leadGen)
	close(in.wake)
	for _, f := range in.work[in.head:] {
		go f()
	}
	in.work, in.head = nil, 0
}
