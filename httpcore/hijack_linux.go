package httpcore

import (
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// ErrHijacked is returned by reads of a request body whose connection was
// hijacked, and by a second Hijack.
var ErrHijacked = errors.New("httpcore: connection has been hijacked")

// hijackReply is what the loop hands the goroutine taking a connection.
type hijackReply struct {
	fd    int
	in    []byte // input read but not served
	out   []byte // output queued but not written yet (encoded, with a codec)
	codec Codec  // the connection's Codec, if any
	err   error
}

// Hijack takes the connection of an asynchronous response out of the
// loop and returns it as a net.Conn (with working deadlines), with the
// bytes the loop had read past the request's head and not served (the
// start of whatever the client sent next). The response ends: nothing of
// it is sent but what was flushed before, which is written, with earlier
// pipelined responses, before Hijack returns. The caller owns the
// connection and must close it. A streamed request body still arriving is
// dropped (reads fail with ErrHijacked), and the request's
// OnClientGone function is not called.
//
// Hijack must be called after Async, from a goroutine other than the
// loop's, as it waits for the loop. It fails with ErrNotAsync without
// Async, ErrResponseEnded after End, ErrConnClosed when the connection is
// gone and ErrBodyStarted after SendFile.
//
// Server.Shutdown waits for hijacked connections to be closed (see
// there); closing the returned net.Conn is what tells it.
func (w *ResponseWriter) Hijack() (net.Conn, []byte, error) {
	switch w.state.Load() {
	case rwSync:
		return nil, nil, ErrNotAsync
	case rwEnded:
		return nil, nil, ErrResponseEnded
	}
	w.stopWriteTimer()
	reply := make(chan hijackReply, 1)
	w.l.s.post(task{kind: taskHijack, w: w, reply: reply})
	r := <-reply
	if r.err != nil {
		return nil, nil, r.err
	}
	nc, err := fdConn(r.fd)
	if err != nil {
		return nil, nil, err
	}
	if len(r.out) > 0 {
		_ = nc.SetWriteDeadline(time.Now().Add(w.l.cfg.WriteTimeout))
		_, err := nc.Write(r.out)
		_ = nc.SetWriteDeadline(time.Time{})
		if err != nil {
			_ = nc.Close()
			return nil, nil, err
		}
	}
	if r.codec != nil {
		nc = r.codec.Hijack(nc)
	}
	return w.l.s.trackHijacked(nc), r.in, nil
}

// fdConn turns the socket fd into a net.Conn on the runtime's poller; fd
// is closed (the net.Conn holds a duplicate).
func fdConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "hijacked")
	nc, err := net.FileConn(f)
	_ = f.Close()
	return nc, err
}

// hijack detaches the connection of w from the loop for Hijack. Loop only.
func (l *loop) hijack(w *ResponseWriter) hijackReply {
	c := w.c
	switch {
	case c == nil || c.state == connClosed || c.async != w:
		return hijackReply{err: ErrConnClosed}
	case c.file != nil || w.file != nil:
		return hijackReply{err: ErrBodyStarted}
	}
	if !w.state.CompareAndSwap(rwAsync, rwEnded) {
		return hijackReply{err: ErrResponseEnded}
	}
	l.drainRelay(c, w)
	r := hijackReply{fd: c.fd, in: clone(c.in), out: clone(c.out[c.outOff:])}
	if c.x != nil {
		if !l.encodeOut(c) {
			return hijackReply{err: ErrConnClosed}
		}
		r.out, r.codec = clone(c.x.enc[c.x.encOff:]), c.x.codec
	}
	w.rl.gone = nil
	w.rl.fail(l)
	if c.body != nil {
		c.body.pipe.fail(ErrHijacked)
		c.body = nil
	}
	l.detach(c)
	l.s.requests.Add(1)
	return r
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

// detach forgets c without closing its descriptor, which now belongs to
// someone else.
func (l *loop) detach(c *conn) {
	_ = l.p.del(c.fd)
	l.conns[c.fd] = nil
	l.timers.remove(c)
	l.releaseIn(c)
	l.releaseOut(c)
	l.releaseEnc(c)
	c.async = nil
	c.setState(connClosed)
	l.nconns--
	if l.gate != nil {
		l.gate.Conns(-1)
	}
	l.s.conns.Add(-1)
}

// hijackedSet is the hijacked connections of a Server that are still open.
type hijackedSet struct {
	mu    sync.Mutex
	conns map[*hijackedConn]struct{}
}

// A hijackedConn is a hijacked connection; closing it removes it from its
// Server's set.
type hijackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (s *Server) trackHijacked(nc net.Conn) net.Conn {
	hc := &hijackedConn{Conn: nc, s: s}
	h := &s.hijacked
	h.mu.Lock()
	if h.conns == nil {
		h.conns = make(map[*hijackedConn]struct{})
	}
	h.conns[hc] = struct{}{}
	h.mu.Unlock()
	return hc
}

// Close closes the connection.
func (hc *hijackedConn) Close() error {
	err := hc.Conn.Close()
	hc.once.Do(func() {
		h := &hc.s.hijacked
		h.mu.Lock()
		delete(h.conns, hc)
		h.mu.Unlock()
	})
	return err
}

// CloseWrite shuts down the writing side of the TCP connection.
func (hc *hijackedConn) CloseWrite() error {
	if cw, ok := hc.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("httpcore: CloseWrite not supported")
}

// CloseRead shuts down the reading side of the TCP connection.
func (hc *hijackedConn) CloseRead() error {
	if cr, ok := hc.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.New("httpcore: CloseRead not supported")
}

// HijackedConns returns the number of hijacked connections not closed yet.
func (s *Server) HijackedConns() int {
	s.hijacked.mu.Lock()
	defer s.hijacked.mu.Unlock()
	return len(s.hijacked.conns)
}

// closeHijacked closes every hijacked connection still open.
func (s *Server) closeHijacked() {
	h := &s.hijacked
	h.mu.Lock()
	conns := make([]*hijackedConn, 0, len(h.conns))
	for hc := range h.conns {
		conns = append(conns, hc)
	}
	h.mu.Unlock()
	for _, hc := range conns {
		_ = hc.Close()
	}
}
