package httpcore

import (
	"io"
	"sync"
	"time"
)

// pipeSize bounds the request body bytes a bodyPipe holds.
const pipeSize = 64 << 10

// A bodyPipe carries a request body from the loop to the goroutine of the
// handler reading it. It holds at most pipeSize bytes: when it is full the
// loop stops reading the connection (backpressure), and the reader posts
// a resume to the loop once it has read half of it.
type bodyPipe struct {
	mu       sync.Mutex
	readable sync.Cond
	buf      []byte // unread bytes are buf[off:]
	off      int
	eof      bool    // the whole body is in buf
	err      error   // why the body ended early; returned once buf is read
	trailer  []field // trailer fields of a chunked body, set at eof
	wantRoom bool    // the loop waits for the reader to make room
	closed   bool    // the reader is done: what arrives is dropped
	received bool    // some of the body has arrived
	expect   bool    // the client asked for 100 Continue
	started  bool    // Read has been called

	deadline time.Time   // Read fails once it has passed; zero: none
	timer    *time.Timer // wakes a waiting reader at the deadline

	l      *loop
	resume func()          // posted to the loop to resume reading
	w      *ResponseWriter // answers Expect: 100-continue
}

func newBodyPipe(l *loop, expect bool) *bodyPipe {
	p := &bodyPipe{l: l, expect: expect}
	p.readable.L = &p.mu
	return p
}

// write stores what fits of b and returns how much that is. Loop only.
func (p *bodyPipe) write(b []byte) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(b) > 0 {
		p.received = true
	}
	if p.closed {
		return len(b)
	}
	if p.off > 0 {
		p.buf = p.buf[:copy(p.buf, p.buf[p.off:])]
		p.off = 0
	}
	n := min(len(b), pipeSize-len(p.buf))
	if n < len(b) {
		p.wantRoom = true
	}
	if n > 0 {
		p.buf = append(p.buf, b[:n]...)
		p.l.wake(p.readable.Signal)
	}
	return n
}

// end marks the body complete. Loop only.
func (p *bodyPipe) end(trailer []field) {
	p.mu.Lock()
	p.eof, p.trailer = true, trailer
	p.l.wake(p.readable.Broadcast)
	p.mu.Unlock()
}

// fail ends an incomplete body with err. Loop only.
func (p *bodyPipe) fail(err error) {
	p.mu.Lock()
	if !p.eof && p.err == nil {
		p.err = err
	}
	p.l.wake(p.readable.Broadcast)
	p.mu.Unlock()
}

// Read reads body bytes as they arrive. The first call answers a client
// waiting for 100 Continue, unless it sent the body anyway.
func (p *bodyPipe) Read(b []byte) (int, error) {
	if p.firstRead() {
		p.w.sendContinue()
	}
	p.mu.Lock()
	for len(b) > 0 && p.off == len(p.buf) && !p.eof && p.err == nil && !p.closed && !p.expired() {
		p.readable.Wait()
	}
	n := copy(b, p.buf[p.off:])
	p.off += n
	resume := p.wantRoom && len(p.buf)-p.off <= pipeSize/2
	if resume {
		p.wantRoom = false
	}
	err := p.readErr(n, len(b))
	p.mu.Unlock()
	if resume {
		p.l.s.Post(p.resume)
	}
	return n, err
}

// readErr is Read's error after n of want bytes were read. p.mu is held.
func (p *bodyPipe) readErr(n, want int) error {
	switch {
	case n > 0 || want == 0:
		return nil
	case p.closed:
		return errBodyClosed
	case p.err != nil:
		return p.err
	case !p.eof && p.expired():
		return errReadDeadline
	}
	return io.EOF
}

// expired reports whether the read deadline has passed. p.mu is held.
func (p *bodyPipe) expired() bool {
	return !p.deadline.IsZero() && !time.Now().Before(p.deadline)
}

// setReadDeadline sets the read deadline, waking the reader at it.
func (p *bodyPipe) setReadDeadline(t time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.deadline = t
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	if !t.IsZero() {
		p.timer = time.AfterFunc(time.Until(t), p.wakeReader)
	}
}

func (p *bodyPipe) wakeReader() {
	p.mu.Lock()
	p.readable.Broadcast()
	p.mu.Unlock()
}

func (p *bodyPipe) firstRead() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := !p.started && p.expect && !p.received && p.w != nil
	p.started = true
	return first
}

// Close ends reading: buffered bytes are dropped, and so is what arrives.
func (p *bodyPipe) Close() {
	p.mu.Lock()
	p.closed = true
	p.buf, p.off = nil, 0
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.readable.Broadcast()
	p.mu.Unlock()
}

// trailers returns the trailer fields once the body has been read to EOF.
func (p *bodyPipe) trailers() []field {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trailer
}
