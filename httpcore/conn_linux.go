package httpcore

import (
	"golang.org/x/sys/unix"
)

// onConnEvent handles epoll readiness of a connection.
func (l *loop) onConnEvent(c *conn, events uint32) {
	if events&evError != 0 {
		l.closeConn(c) // reset, or both directions shut down
		return
	}
	if events&evHangup != 0 && !l.onHangup(c) {
		return
	}
	if events&evRead != 0 {
		l.onReadable(c)
	}
	if events&evWrite != 0 && c.state != connClosed {
		l.process(c)
	}
}

// onReadable reads once (epoll is level-triggered: the rest comes with the
// next wakeup) and serves what arrived. With nothing buffered the read goes
// into the loop's shared buffer and only an unserved tail is copied out.
func (l *loop) onReadable(c *conn) {
	if c.state == connLingering {
		l.discardInput(c)
		return
	}
	if c.async != nil && c.body == nil && c.state == connActive {
		// Input while a response is made off the loop waits for it, in the
		// socket: stop watching it (see readInterest).
		c.flags |= connInputWaits
		l.setInterest(c)
		return
	}
	if c.x != nil {
		l.readDecoded(c)
		return
	}
	buf, inConn := l.readSpace(c)
	if len(buf) == 0 {
		l.reject(c, errBodyTooLarge) // unreachable while the parser keeps its limits
		l.process(c)
		return
	}
	n := l.readSocket(c, buf)
	if n == 0 {
		return
	}
	c.flags &^= connNeedInput
	data := buf[:n] // n may exceed len(l.rbuf) when buf is c's own buffer
	if inConn {
		c.in = c.in[:len(c.in)+n]
		data = c.in
	}
	l.keepInput(c, data, l.consume(c, data))
	l.process(c)
}

// readSocket reads c's socket into buf and returns how many bytes came.
// It returns 0 when none came now, after closing c on an error, and at
// EOF, which it handles: the client is gone.
func (l *loop) readSocket(c *conn, buf []byte) int {
	n, err := readNB(c.fd, buf)
	switch {
	case err == unix.EAGAIN || err == unix.EINTR:
		return 0
	case err != nil:
		l.closeConn(c)
		return 0
	case n == 0:
		c.flags |= connPeerEOF
		l.clientGone(c)
		l.process(c)
		return 0
	}
	l.st.BytesIn += uint64(n)
	return n
}

// onHangup handles EPOLLRDHUP, watched while a response is made off the
// loop and c is not read: the client has shut down its side. With nothing
// left unread it is gone (net/http cancels the request's context then too);
// otherwise it pipelined more requests first and EOF is found by reading
// them. It reports false if it had to close c.
func (l *loop) onHangup(c *conn) bool {
	c.flags |= connHupSeen
	if unread, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ); err == nil && unread == 0 {
		c.flags |= connPeerEOF
		l.clientGone(c)
	}
	return l.setInterest(c)
}

// clientGone tells a handler still at work that its client has gone: a
// streamed request body ends in an error, and the response's gone hook
// runs (the net/http adapter cancels the request's context).
func (l *loop) clientGone(c *conn) {
	if c.body != nil {
		l.failBody(c, errBodyEOF)
	}
	if c.async != nil {
		c.async.rl.clientGone(l)
	}
}

// readSpace returns where the next read goes: the shared buffer, or the free
// room of c.in when part of a request is buffered there. For a body of known
// length the room is made large enough for all of it; it is empty only when
// c.in is at the input limit.
func (l *loop) readSpace(c *conn) ([]byte, bool) {
	if len(c.in) == 0 {
		return l.rbuf, false
	}
	need := 0
	if p := &c.req; p.headLen > 0 && p.bodyLen > 0 {
		need = p.headLen + int(p.bodyLen) - len(c.in)
	}
	if room := cap(c.in) - len(c.in); room < max(need, minReadRoom) {
		c.in = l.growIn(c.in, max(need, minReadSpace))
	}
	return c.in[len(c.in):cap(c.in)], true
}

// growIn returns in with room for want more bytes, within the input limit.
func (l *loop) growIn(in []byte, want int) []byte {
	n := min(max(2*cap(in), len(in)+want), l.lim.maxInput)
	if n <= cap(in) {
		return in
	}
	b := make([]byte, len(in), n)
	copy(b, in)
	l.inPool.put(in)
	return b
}

// keepInput keeps data[off:], the unserved input, in c.in: the request it
// starts is partial or must wait. Data of a closing connection is dropped.
func (l *loop) keepInput(c *conn, data []byte, off int) {
	rest := data[off:]
	switch {
	case c.state != connActive:
		if len(rest) > 0 {
			c.flags |= connLinger
		}
		l.releaseIn(c)
	case len(rest) == 0:
		l.releaseIn(c)
	case len(c.in) > 0: // data is c.in
		if off == 0 {
			break
		}
		if cap(c.in) > 4*minReadSpace && len(rest) <= inPoolSize {
			c.in = append(l.inPool.get(len(rest)), rest...) // the large one is left to the GC
		} else {
			c.in = c.in[:copy(c.in, rest)]
		}
	default:
		c.in = append(l.inPool.get(len(rest)), rest...)
	}
	if len(c.in) > 0 && c.req.start == 0 {
		c.req.start = l.now
	}
}

func (l *loop) releaseIn(c *conn) {
	if c.in != nil {
		l.inPool.put(c.in)
		c.in = nil
	}
}

func (l *loop) releaseOut(c *conn) {
	if c.out != nil {
		l.outPool.put(c.out)
		c.out, c.outOff = nil, 0
	}
}

// outBuf returns c's output buffer to append to, compacting away what has
// been written when that is at least half of it.
func (l *loop) outBuf(c *conn) []byte {
	if c.out == nil {
		c.out = l.outPool.get(0)
	} else if c.outOff > 0 && c.outOff >= len(c.out)/2 {
		c.out = c.out[:copy(c.out, c.out[c.outOff:])]
		c.outOff = 0
	}
	return c.out
}

// process writes c's output and serves requests buffered in c.in, for as
// long as writing makes room for them, then settles c. Every path that
// changes a connection ends here or in closeConn.
func (l *loop) process(c *conn) {
	if l.in.enabled && len(c.in) > 0 && c.parseable(l.highWater) {
		// Pipelined requests: serve the next one before writing. If its
		// response is made off the loop (inline, the usual case), the
		// responses go out together, before the loop polls.
		l.keepInput(c, c.in, l.consume(c, c.in))
		if c.state == connActive && c.async != nil && c.pendingOut() > 0 {
			l.deferProcess(c)
			return
		}
	}
	for l.flush(c) {
		if len(c.in) == 0 || !c.parseable(l.highWater) {
			l.settle(c)
			return
		}
		l.keepInput(c, c.in, l.consume(c, c.in))
	}
}

// deferProcess leaves c to processDeferred.
func (l *loop) deferProcess(c *conn) {
	if c.flags&connDeferred == 0 {
		c.flags |= connDeferred
		l.deferred = append(l.deferred, c)
	}
}

// processDeferred processes the connections left by deferProcess and
// reports whether there were any.
func (l *loop) processDeferred() bool {
	if len(l.deferred) == 0 {
		return false
	}
	cs := l.deferred
	l.deferred = l.spareDeferred[:0]
	for i, c := range cs {
		cs[i] = nil
		c.flags &^= connDeferred
		if c.state != connClosed {
			l.process(c)
		}
	}
	l.spareDeferred = cs[:0]
	return true
}

// flush writes pending output, buffered then a file body, until done or
// EAGAIN, and tells a streaming writer how much is left. It reports false if
// it had to close c.
func (l *loop) flush(c *conn) bool {
	if c.pendingOut() == 0 {
		return true
	}
	if c.events&evWrite == 0 {
		c.lastWrite = l.now // WriteTimeout counts from when output got stuck
	}
	if !l.writeOut(c) || c.bufferedOut() == 0 && c.file != nil && !l.writeFile(c) {
		return false
	}
	if c.async != nil {
		c.async.rl.drained(l, c.pendingOut())
	}
	return true
}

// writeOut writes c.out until done or EAGAIN. It reports false if it had
// to close c.
func (l *loop) writeOut(c *conn) bool {
	if c.x != nil {
		return l.writeEncoded(c)
	}
	if !l.writeFrom(c, c.out, &c.outOff) {
		return false
	}
	if c.bufferedOut() == 0 {
		l.releaseOut(c)
	}
	return true
}

// writeFrom writes b[*off:] to c's socket until done or EAGAIN, moving
// *off on. It reports false if it had to close c.
func (l *loop) writeFrom(c *conn, b []byte, off *int) bool {
	for *off < len(b) {
		n, err := writeNB(c.fd, b[*off:])
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true
		case err != nil:
			l.closeConn(c)
			return false
		}
		*off += n
		c.lastWrite = l.now
		l.st.BytesOut += uint64(n)
	}
	return true
}

// settle decides what c waits for next: it closes c if it is done, or sets
// its epoll interest and deadline.
func (l *loop) settle(c *conn) {
	switch {
	case c.state == connLingering:
		return // waits for EOF or its deadline
	case c.pendingOut() > 0:
	case c.state == connClosing:
		l.finishClose(c)
		return
	case c.async != nil:
	case c.flags&connPeerEOF != 0:
		l.closeConn(c)
		return
	}
	if l.setInterest(c) {
		l.setDeadline(c)
	}
}

// setInterest registers the events c waits for: input unless it is paused
// (response pending off the loop or a file body being sent, output above
// the high-water mark, client done sending) or while a streamed request
// body has room; the client's hang-up while a response is made off the
// loop; output while some is pending. It reports false if it had to close c.
func (l *loop) setInterest(c *conn) bool {
	if c.async == nil {
		c.flags &^= connInputWaits
	}
	var ev uint32
	switch c.state {
	case connActive:
		ev = l.readInterest(c)
	case connLingering:
		ev = evRead
	}
	if c.pendingOut() > 0 {
		ev |= evWrite
	}
	if ev == c.events {
		return true
	}
	if ev&evRead != 0 && c.events&evRead == 0 {
		l.resumeTimeouts(c) // receive timeouts count while c is read
	}
	if err := l.p.mod(c.fd, ev); err != nil {
		l.log.Error("update connection events", "error", err)
		l.closeConn(c)
		return false
	}
	c.events = ev
	return true
}

// readInterest is the input interest of an active connection.
func (l *loop) readInterest(c *conn) uint32 {
	switch {
	case c.body != nil:
		if c.body.reading() {
			return evRead
		}
	case c.async == nil && c.file == nil && c.flags&connPeerEOF == 0 && c.pendingOut() <= l.highWater:
		return evRead
	}
	if c.async != nil && c.flags&(connPeerEOF|connHupSeen) == 0 {
		if c.body == nil && len(c.in) == 0 && c.events == evRead && c.flags&connInputWaits == 0 {
			// Keep the read interest while no input comes: the usual
			// request, answered off the loop, then costs no epoll_ctl at
			// all. Input (or EOF) turns it into hang-up watching.
			return evRead
		}
		return evHangup
	}
	return 0
}

func (l *loop) resumeTimeouts(c *conn) {
	if c.req.start != 0 {
		c.req.start = l.now
	}
	if c.body != nil {
		c.body.start = l.now
	}
}

// setDeadline arms c's timer with the earliest deadline that applies:
// stuck output, then, while c is read, the head, request or idle timeout.
func (l *loop) setDeadline(c *conn) {
	var when int64
	if c.pendingOut() > 0 {
		when = c.lastWrite + int64(l.cfg.WriteTimeout)
	}
	if r := l.readDeadline(c); r != 0 && (when == 0 || r < when) {
		when = r
	}
	l.timers.set(c, when)
}

func (l *loop) readDeadline(c *conn) int64 {
	switch p := &c.req; {
	case c.state != connActive || c.events&evRead == 0 || c.async != nil && c.body == nil:
		return 0 // not read, or read only to notice input (readInterest)
	case c.body != nil:
		return c.body.start + int64(l.cfg.RequestTimeout)
	case l.draining && c.idle():
		return l.now + int64(min(l.cfg.IdleTimeout, drainIdleGrace))
	case p.start == 0:
		return l.now + int64(l.cfg.IdleTimeout)
	case p.headLen == 0:
		return p.start + int64(min(l.cfg.HeaderTimeout, l.cfg.RequestTimeout))
	default:
		return p.start + int64(l.cfg.RequestTimeout)
	}
}

// onTimeout handles c's expired deadline: a request cut short gets a 408 if
// it can be written at once; in any case c is closed. A streamed request
// body that is late fails instead, and its handler answers.
func (l *loop) onTimeout(c *conn) {
	stuck := c.pendingOut() > 0 && c.lastWrite+int64(l.cfg.WriteTimeout) <= l.now
	if !stuck && c.body != nil {
		l.failBody(c, errBodyTimeout)
		l.process(c)
		return
	}
	if c.state == connActive && !stuck && len(c.in) > 0 && c.async == nil {
		c.out = appendErrorResponse(l.outBuf(c), l.date.line, errTimeout.status)
		l.s.requests.Add(1)
		l.st.refused(errTimeout.status)
		l.logResponse(c, nil, errTimeout.status)
		if !l.flush(c) {
			return
		}
	}
	l.closeConn(c)
}

// finishClose closes a connection whose last response is written. If the
// client may still be sending (a refused request, unread input) it lingers
// first: closing with unread input makes the kernel send a reset, which can
// destroy the response before the client has read it.
func (l *loop) finishClose(c *conn) {
	linger := c.flags&connLinger != 0 || len(c.in) > 0
	if !linger && c.flags&connPeerEOF == 0 {
		unread, err := unix.IoctlGetInt(c.fd, unix.SIOCINQ)
		linger = err == nil && unread > 0
	}
	l.releaseIn(c)
	if c.x != nil {
		l.sendEnd(c)
	}
	if !linger || c.flags&connPeerEOF != 0 || unix.Shutdown(c.fd, unix.SHUT_WR) != nil {
		l.closeConn(c)
		return
	}
	c.setState(connLingering)
	if l.setInterest(c) {
		l.timers.set(c, l.now+int64(lingerTimeout))
	}
}

// discardInput reads and drops input of a lingering connection, closing it
// at EOF, on error or after lingerMaxBytes.
func (l *loop) discardInput(c *conn) {
	n, err := unix.Read(c.fd, l.rbuf)
	if err == unix.EAGAIN || err == unix.EINTR {
		return
	}
	c.discarded += n
	l.st.BytesIn += uint64(max(n, 0))
	if err != nil || n == 0 || c.discarded > lingerMaxBytes {
		l.closeConn(c)
	}
}
