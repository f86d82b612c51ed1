package httpcore

import (
	"runtime/debug"
	"time"
)

// serveBatch serves the complete requests at the start of data, in order,
// and returns how many bytes they took. It stops at an incomplete request,
// when c closes, when a response goes asynchronous, or when c's output is
// above the high-water mark.
func (l *loop) serveBatch(c *conn, data []byte) int {
	off := 0
	for off < len(data) && c.parseable(l.highWater) {
		n := l.serveOne(c, data[off:])
		if n == 0 {
			break
		}
		off += n
	}
	return off
}

// serveOne serves the request at the start of b if it is all there and
// returns its length, or returns 0: more input is needed (connNeedInput),
// or the request was refused and c is closing.
func (l *loop) serveOne(c *conn, b []byte) int {
	r, p := l.req, &c.req
	fresh := p.headLen == 0
	if fresh {
		if err := l.readHead(c, r, b); err != nil {
			return l.stop(c, err)
		}
		if l.streamBodies {
			return l.serveStreaming(c, r, b) // the body follows as it arrives
		}
	}
	end, err := l.bodyEnd(p, b)
	if err == errIncomplete && fresh {
		l.maybeContinue(c, r, len(b))
	}
	if err != nil {
		return l.stop(c, err)
	}
	if !fresh {
		if _, err := r.parseHead(b[:p.headLen], &l.lim); err != nil {
			return l.stop(c, err) // cannot happen: it was parsed before
		}
	}
	if err := l.setBody(r, p, b); err != nil {
		return l.stop(c, err)
	}
	c.req = pendingReq{}
	r.head = b[:p.headLen]
	l.dispatch(c, r)
	return end
}

// stop ends serving c for now: errIncomplete waits for input, any other
// error is answered and closes c. It returns 0 for serveOne.
func (l *loop) stop(c *conn, err error) int {
	if err == errIncomplete {
		c.flags |= connNeedInput
	} else {
		l.reject(c, err)
	}
	return 0
}

// readHead parses and checks the head of the request at the start of b and
// records its framing in c.req. A head that arrived in pieces is parsed again
// only once its end may be there, so a trickled head costs linear time.
func (l *loop) readHead(c *conn, r *Request, b []byte) error {
	p, limit := &c.req, l.lim.maxHeader
	if p.scanned > 0 && len(b) < limit && !headMayEnd(b, p.scanned) {
		p.scanned = len(b)
		return errIncomplete
	}
	hb := b[:min(len(b), limit)]
	if l.h2Preface && isPreface(hb) {
		return readPreface(p, r, hb)
	}
	n, err := r.parseHead(hb, &l.lim)
	switch {
	case err == errIncomplete && len(hb) == limit:
		return limitError(hb)
	case err == errIncomplete:
		p.scanned = len(b)
		return err
	case err != nil:
		return err
	case r.contentLength > l.lim.maxBody:
		return errBodyTooLarge
	case r.flags&reqExpectOther != 0:
		return errExpectation
	}
	p.headLen = n
	p.bodyLen = max(r.contentLength, 0)
	if r.flags&reqChunked != 0 {
		p.bodyLen = -1
	}
	return nil
}

// h2PrefaceHead is the part of the HTTP/2 client preface that reads as a
// request head (RFC 9113 3.4); "SM\r\n\r\n" follows.
const h2PrefaceHead = "PRI * HTTP/2.0\r\n\r\n"

// isPreface reports whether b starts with h2PrefaceHead or with a part of it.
func isPreface(b []byte) bool {
	k := min(len(b), len(h2PrefaceHead))
	return k > 0 && string(b[:k]) == h2PrefaceHead[:k]
}

// readPreface makes r the request an HTTP2PrefaceHandler gets for the
// HTTP/2 client preface at the start of b, or waits for all of it.
func readPreface(p *pendingReq, r *Request, b []byte) error {
	if len(b) < len(h2PrefaceHead) {
		p.scanned = len(b)
		return errIncomplete
	}
	r.reset()
	r.method, r.target, r.path, r.proto = "PRI", "*", "*", "HTTP/2.0"
	r.flags |= reqClose
	p.headLen, p.bodyLen = len(h2PrefaceHead), 0
	return nil
}

// bodyEnd returns the length of the whole request at the start of b, or
// errIncomplete.
func (l *loop) bodyEnd(p *pendingReq, b []byte) (int, error) {
	if p.bodyLen < 0 {
		return scanChunked(b, p.headLen, &p.chunk, &l.lim)
	}
	end := p.headLen + int(p.bodyLen)
	if len(b) < end {
		return 0, errIncomplete
	}
	return end, nil
}

// maybeContinue sends 100 Continue to a client that waits for it before
// sending the body (RFC 9110 10.1.1): the head asked for it and came alone.
func (l *loop) maybeContinue(c *conn, r *Request, n int) {
	if r.flags&reqExpect100 != 0 && n == c.req.headLen {
		c.out = append(l.outBuf(c), continueResponse...)
	}
}

// setBody points r.body at the complete body (a chunked one was moved
// together in place by scanChunked) and reads its trailer fields.
func (l *loop) setBody(r *Request, p *pendingReq, b []byte) error {
	if p.bodyLen >= 0 {
		if p.bodyLen > 0 {
			r.body = b[p.headLen : p.headLen+int(p.bodyLen)]
		}
		return nil
	}
	if s := &p.chunk; s.data > p.headLen {
		r.body = b[p.headLen:s.data]
	}
	_, err := r.parseFields(b, p.chunk.trailer(), &l.lim, true)
	return err
}

// reject answers a refused request with err's status and closes c after it;
// the rest of c's input is never parsed.
func (l *loop) reject(c *conn, err error) {
	pe, ok := err.(*protoError)
	if !ok {
		pe = badRequest(err.Error())
	}
	if l.debug {
		l.log.Debug("request refused", "status", pe.status, "reason", pe.msg, "remote", peerAddr(c.fd))
	}
	l.st.refused(pe.status)
	l.logResponse(c, nil, pe.status)
	l.answerError(c, pe.status)
}

// answerError queues an error response of the engine and closes c after it.
func (l *loop) answerError(c *conn, status int) {
	c.out = appendErrorResponse(l.outBuf(c), l.date.line, status)
	l.s.requests.Add(1)
	c.flags |= connLinger
	c.setState(connClosing)
}

// dispatch runs the handler for r and queues its response, unless the
// handler went asynchronous: then c waits, and so do requests behind r.
func (l *loop) dispatch(c *conn, r *Request) {
	r.c = c
	w := l.w
	w.begin(c, r)
	w.start = l.now
	if l.cfg.OnResponse != nil {
		w.reqLine = append(append(append(append(append(w.reqLine[:0], r.method...), ' '), r.target...), ' '), r.proto...)
	}
	if r.stream != nil {
		r.stream.w = w // answers Expect: 100-continue on the first Read
		w.flags |= rwKeep
	}
	inline := len(l.in.work)
	if !l.callHandler(w, r) {
		l.handlerPanicked(c, w)
		return
	}
	if w.state.Load() != rwSync {
		c.async = w
		if len(l.in.work) == inline {
			// Whoever finishes the response is likely made runnable now,
			// as by wake: let it run before the loop blocks. Work queued
			// with RunInline is run by the loop itself. (w is the
			// handler's now: only the loop's own state is read.)
			l.readied = true
		}
		l.w = l.spareWriter() // w belongs to the handler now
		return
	}
	l.finish(c, w)
	w.reset()
}

// callHandler runs the handler and reports false if it panicked.
func (l *loop) callHandler(w *ResponseWriter, r *Request) (ok bool) {
	defer func() {
		if w.serving.Load() { // set by Async
			w.serving.Store(false)
		}
		if v := recover(); v != nil {
			l.log.Error("handler panic", "panic", v, "method", r.method, "target", r.target,
				"stack", string(debug.Stack()))
			ok = false
		}
	}()
	l.h.ServeHTTP(w, r)
	return true
}

// handlerPanicked drops the response of a panicked handler and answers 500,
// or just closes c if part of the response was sent already.
func (l *loop) handlerPanicked(c *conn, w *ResponseWriter) {
	started, status, start := w.rl.headSent, w.status, w.start
	if w.state.Swap(rwEnded) == rwSync {
		w.dropFile()
		w.reset()
	} else {
		l.w = newResponseWriter(l) // a goroutine may still hold w; its End does nothing now
	}
	if !started {
		status = errHandlerPanic.status
	}
	l.st.observe(status, l.now-start)
	l.logResponse(c, w, status)
	if started {
		l.s.requests.Add(1)
		l.abandon(c)
		return
	}
	l.answerError(c, status)
}

// spareWriter returns a writer for the next request: one reused, or a new
// one.
func (l *loop) spareWriter() *ResponseWriter {
	if n := len(l.freeWriters); n > 0 {
		w := l.freeWriters[n-1]
		l.freeWriters[n-1] = nil
		l.freeWriters = l.freeWriters[:n-1]
		return w
	}
	return newResponseWriter(l)
}

// maxFreeWriters bounds the writers a loop keeps for reuse.
const maxFreeWriters = 64

// reuseWriter keeps w, an asynchronous writer whose response has just
// been queued, for reuse if the handler allows it (ReusingHandler) and
// nothing but the handler can hold w still: a write deadline's timer,
// a streamed body's relay or a request body's pipe. An aborted response's
// handler failed: it may have left goroutines behind.
func (l *loop) reuseWriter(w *ResponseWriter) {
	if !l.reuseWriters || w.flags&(rwKeep|rwStreaming|rwAborted) != 0 || w.wtimer != nil ||
		!w.wdeadline.IsZero() || w.file != nil || len(l.freeWriters) >= maxFreeWriters {
		return
	}
	w.rl.reset()
	w.wdeadline = time.Time{}
	w.reset()
	l.freeWriters = append(l.freeWriters, w)
}

// finish and endAsync are in respond.go.
