package httpcore

// The loop's side of responses: queuing finished responses on their
// connection, in request order, and moving streamed output from a relay
// into the connection's output.

// finish queues w's response on c. c closes after it unless both sides keep
// the connection alive, the server is not draining and the request body,
// if it was streamed, arrived in full.
func (l *loop) finish(c *conn, w *ResponseWriter) {
	l.s.requests.Add(1)
	status := w.status
	switch {
	case w.flags&rwAborted != 0:
		w.dropFile()
		if w.flags&rwAbort500 != 0 && !w.rl.headSent {
			status = errHandlerPanic.status
			c.out = appendErrorResponse(l.outBuf(c), l.date.line, status)
		}
		l.st.observe(status, l.now-w.start)
		l.logResponse(c, w, status)
		l.abandon(c)
		return
	case w.flags&rwStreaming != 0 || w.wantsChunked():
		l.finishStream(c, w)
	default:
		l.finishBuffered(c, w)
	}
	l.st.observe(status, l.now-w.start)
	l.logResponse(c, w, status)
	if c.body != nil {
		l.abandon(c) // the rest of the body is on its way: no next request can be found
	}
}

// finishBuffered queues a response whose body is buffered in w or is a file.
func (l *loop) finishBuffered(c *conn, w *ResponseWriter) {
	fo := w.file
	w.file = nil
	if fo != nil {
		fo.left = min(fo.left, w.length) // never more than the head promised
	}
	keep := w.keepAlive() && !l.draining && c.body == nil && (fo == nil || fo.left == w.length)
	c.out = w.appendResponse(l.outBuf(c), l.date.line, keep)
	if fo != nil && fo.left > 0 {
		c.file = fo
	} else if fo != nil {
		fo.close()
	}
	if !keep {
		c.setState(connClosing)
	}
}

// finishStream queues the end of a streamed response: what w still holds,
// and the last chunk with any trailer fields. c closes after a body
// delimited by the close, or one shorter than its Content-Length.
func (l *loop) finishStream(c *conn, w *ResponseWriter) {
	if w.flags&rwStreaming == 0 {
		w.startStream() // chunked, to carry trailer fields
	}
	if len(w.body) > 0 {
		w.body, _, _ = w.rl.hand(w.body, false)
	}
	l.drainRelay(c, w)
	if w.flags&rwChunked != 0 {
		c.out = appendLastChunk(l.outBuf(c), w.trailer)
	}
	keep := w.rl.keep && !l.draining && c.body == nil && w.flags&rwCloseDelim == 0 && !w.streamShort()
	if !keep {
		c.setState(connClosing)
	}
}

// abandon closes c once the output queued so far is written, without
// reading another request: what follows on the connection cannot be
// trusted to start one.
func (l *loop) abandon(c *conn) {
	l.dropBody(c, errBodyClosed)
	c.flags |= connLinger
	c.setState(connClosing)
}

// endAsync queues a response finished off the loop and resumes serving the
// requests behind it. A response for a connection closed meanwhile is
// dropped.
func (l *loop) endAsync(w *ResponseWriter) {
	c := w.c
	if c == nil || c.state == connClosed || c.async != w {
		w.dropFile()
		return
	}
	c.async = nil
	l.drainRelay(c, w)
	l.finish(c, w)
	l.reuseWriter(w)
	l.process(c)
}

// takeTask writes out what the writer of an asynchronous response has
// handed over so far.
func (l *loop) takeTask(w *ResponseWriter) {
	c := w.c
	if c == nil || c.state == connClosed || c.async != w {
		return
	}
	l.drainRelay(c, w)
	l.process(c)
}

// drainRelay moves what w's relay holds into c's output: 1xx responses,
// the head (ended with Date and Connection) and body pieces, framed.
func (l *loop) drainRelay(c *conn, w *ResponseWriter) {
	rl := &w.rl
	rl.mu.Lock()
	defer rl.mu.Unlock()
	rl.posted = false
	if rl.queued == 0 {
		return
	}
	out := append(l.outBuf(c), rl.interim...)
	rl.interim = nil
	if rl.head != nil {
		m := rl.meta
		rl.keep, rl.chunked = m.keep && !l.draining, m.chunked
		out = append(out, rl.head...)
		out = appendHeadEnd(out, l.date.line, m.hasDate, rl.keep, m.http10)
		rl.head, rl.headSent = nil, true
	}
	for i, p := range rl.data {
		out = appendChunk(out, p, rl.chunked)
		if len(rl.free) < maxFreePieces {
			rl.free = append(rl.free, p[:0])
		}
		rl.data[i] = nil
	}
	rl.data = rl.data[:0]
	c.out = out
	rl.queued = 0
	rl.pending = c.pendingOut()
	rl.wake(l)
}
