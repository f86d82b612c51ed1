package httpcore

import "sync"

// A relay carries a streamed response from the goroutine writing it to the
// loop, which copies it into the connection's output. It bounds what is in
// flight: a writer waits while the bytes handed over but not yet written to
// the socket exceed streamHighWater, and the loop wakes it when they fall
// under streamLowWater or the connection goes away.
type relay struct {
	mu      sync.Mutex
	room    sync.Cond  // signalled when output drained or the connection closed
	interim []byte     // 1xx responses to send before the head
	head    []byte     // the head without Date, Connection and the empty line
	meta    streamMeta // how to end the head and frame the body
	data    [][]byte   // body pieces, not framed yet
	free    [][]byte   // pieces the loop has copied, for the writer to reuse
	queued  int        // bytes in interim, head and data
	pending int        // the connection's unwritten output at the loop's last look
	posted  bool       // a taskTake for this response is queued
	waiting bool       // a writer waits on room
	headSet bool       // the head has been handed over
	contAsk bool       // 100 Continue was asked for
	err     error      // ErrConnClosed once the connection is gone

	// Used by the loop only.
	gone     func() // called once when the client goes away
	headSent bool   // the head is in the connection's output
	keep     bool   // the head promised keep-alive
	chunked  bool   // body pieces are framed as chunks
}

// streamMeta is what the loop needs, besides the bytes, to finish a
// streamed head and frame its body.
type streamMeta struct {
	keep, chunked, hasDate, http10 bool
}

// maxFreePieces bounds the buffers a relay keeps for reuse.
const maxFreePieces = 4

func (rl *relay) init() { rl.room.L = &rl.mu }

// reset clears a relay for the next response of a reused writer; the loop
// owns it then. Its spare buffers go: they served one streamed response.
func (rl *relay) reset() {
	*rl = relay{}
	rl.init()
}

// setHead hands over the head of a streamed response.
func (rl *relay) setHead(head []byte, meta streamMeta) {
	rl.mu.Lock()
	rl.head, rl.meta, rl.headSet = head, meta, true
	rl.queued += len(head)
	rl.mu.Unlock()
}

// addInterim queues a 1xx response before the head; it is dropped once the
// head has been handed over. It reports whether a take must be posted.
func (rl *relay) addInterim(b []byte) bool {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.headSet || rl.err != nil {
		return false
	}
	rl.interim = append(rl.interim, b...)
	rl.queued += len(b)
	return rl.markPosted()
}

// askContinue queues 100 Continue, once, unless the head went first.
func (rl *relay) askContinue() bool {
	rl.mu.Lock()
	ask := !rl.contAsk
	rl.contAsk = true
	rl.mu.Unlock()
	return ask && rl.addInterim([]byte(continueResponse))
}

// markPosted reports whether a take must be posted, and notes that it is.
// rl.mu is held.
func (rl *relay) markPosted() bool {
	if rl.posted {
		return false
	}
	rl.posted = true
	return true
}

// hand gives the loop body, after waiting for room if wait is set (never
// on the loop goroutine, which alone can drain the output), and returns an
// empty buffer for the next bytes, or the error that makes the bytes
// pointless. It reports whether a take must be posted.
func (rl *relay) hand(body []byte, wait bool) ([]byte, bool, error) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if wait {
		rl.waitRoom()
	}
	if rl.err != nil {
		return body[:0], false, rl.err
	}
	if len(body) > 0 {
		rl.data = append(rl.data, body)
		rl.queued += len(body)
		body = rl.takeFree()
	}
	return body, rl.markPosted(), nil
}

// waitRoom waits while too much output is in flight. rl.mu is held.
func (rl *relay) waitRoom() {
	for rl.err == nil && rl.queued+rl.pending > streamHighWater {
		rl.waiting = true
		rl.room.Wait()
	}
}

func (rl *relay) takeFree() []byte {
	if k := len(rl.free); k > 0 {
		b := rl.free[k-1]
		rl.free[k-1] = nil
		rl.free = rl.free[:k-1]
		return b
	}
	return make([]byte, 0, streamChunk)
}

// fail tells writers the connection is gone and drops what they handed
// over. Loop only.
func (rl *relay) fail(l *loop) {
	rl.mu.Lock()
	rl.err = ErrConnClosed
	rl.interim, rl.head, rl.data, rl.free = nil, nil, nil, nil
	rl.queued = 0
	l.wake(rl.room.Broadcast)
	rl.mu.Unlock()
	rl.clientGone(l)
}

// clientGone runs the gone hook once. Loop only.
func (rl *relay) clientGone(l *loop) {
	if f := rl.gone; f != nil {
		rl.gone = nil
		l.wake(f)
	}
}

// drained records the connection's unwritten output and wakes a waiting
// writer once it is low enough. Loop only.
func (rl *relay) drained(l *loop, pending int) {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.pending = pending
	rl.wake(l)
}

// wake wakes a waiting writer if there is room. rl.mu is held; loop only.
func (rl *relay) wake(l *loop) {
	if rl.waiting && rl.queued+rl.pending <= streamLowWater {
		rl.waiting = false
		l.wake(rl.room.Broadcast)
	}
}

// handOn hands the buffered body on towards the connection, with the head
// the first time. A synchronous response, written on the loop, goes
// straight into the connection's output. An asynchronous one goes through
// the relay, and the loop takes it from there: the connection's output is
// the loop's alone, whichever goroutine writes. The writer waits for room
// unless it may be the loop goroutine, which alone makes room: in the
// handler of this response, or in a posted function.
func (w *ResponseWriter) handOn() error {
	if w.flags&rwStreaming == 0 {
		w.startStream()
	}
	direct := w.state.Load() == rwSync
	mayBeLoop := direct || w.serving.Load() || w.l.userOnLoop.Load()
	body, post, err := w.rl.hand(w.body, !mayBeLoop)
	w.body = body
	switch {
	case err != nil:
		return err
	case direct:
		w.l.drainRelay(w.c, w)
	case post:
		w.l.s.post(task{kind: taskTake, w: w})
	}
	return nil
}

// writeInterim sends an informational (1xx) response b before the head;
// it does nothing once the head has gone. Safe from the writer's
// goroutine or the body reader's.
func (w *ResponseWriter) writeInterim(b []byte) {
	if w.rl.addInterim(b) {
		w.l.s.post(task{kind: taskTake, w: w})
	}
}

// sendContinue answers Expect: 100-continue, once.
func (w *ResponseWriter) sendContinue() {
	if w.rl.askContinue() {
		w.l.s.post(task{kind: taskTake, w: w})
	}
}

// onGone makes the loop call f, once, when the client goes away (EOF or
// reset) or the connection closes before the response ends. Call it on the
// loop, before the writer is handed to another goroutine.
func (w *ResponseWriter) onGone(f func()) { w.rl.gone = f }
