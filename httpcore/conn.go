package httpcore

import "math"

// A conn is one client connection, owned by its loop's goroutine. It is kept
// small: an idle keep-alive connection holds no buffers, only this struct.
// conns are never reused, so a ResponseWriter finished late can safely look
// at the conn it was made for.
type conn struct {
	fd     int
	state  connState
	flags  connFlags
	events uint32 // epoll interest as registered

	in     []byte // unserved input, starting at a request; nil when empty
	out    []byte // output; out[outOff:] is not written yet; nil when empty
	outOff int

	async     *ResponseWriter // response being finished off the loop
	file      *fileOut        // file body being sent after out; nil when none
	body      *bodyIn         // request body being streamed to a handler; nil when none
	req       pendingReq      // progress of the request at the start of in
	timer     timerEntry
	lastWrite int64       // loop time of the last write progress
	discarded int         // bytes read and dropped while lingering
	peer      string      // the client's address: as ServeConnInfo named it, or once asked for (Request.RemoteAddr)
	x         *codecState // nil unless served through a Codec (ConnInfo.Codec)
}

// connState is where a connection is in its life. setState is the only place
// it changes.
type connState uint8

const (
	// connActive: requests are read and served. Next: connClosing,
	// connClosed.
	connActive connState = iota
	// connClosing: the last response is queued; no further request is read.
	// Next: connLingering once the output is written, or connClosed.
	connClosing
	// connLingering: output written and the write side shut down; input is
	// read and dropped until EOF, lingerTimeout or lingerMaxBytes, so the
	// client reads the response instead of a reset. Next: connClosed.
	connLingering
	// connClosed: the descriptor is closed. Terminal.
	connClosed
)

type connFlags uint8

const (
	connPeerEOF    connFlags = 1 << iota // the client has shut down its side
	connNeedInput                        // in holds no complete request
	connLinger                           // more input may be on its way: linger when closing
	connHupSeen                          // EPOLLRDHUP was handled: stop watching for it
	connInputWaits                       // input came while a response is made off the loop
	connDeferred                         // in loop.deferred: written before the loop polls
	connAccepted                         // accepted by the loop from a listener (not given by ServeConn)
)

// pendingReq is the progress of a request that arrived in pieces. Offsets
// are from the start of the request, which is always the start of conn.in,
// so they stay right when that data moves.
type pendingReq struct {
	start   int64 // loop time of the first byte (of the connection, for its first request); 0: none
	scanned int   // head bytes scanned without finding the head's end
	headLen int   // head length once parsed and checked; 0 before
	bodyLen int64 // Content-Length (0 when none), or -1 for chunked
	chunk   chunkScan
}

func (c *conn) setState(s connState) {
	if c.state < s {
		c.state = s
	}
}

// pendingOut is the number of output bytes not yet written: buffered ones
// and the rest of a file body.
func (c *conn) pendingOut() int {
	n := c.bufferedOut()
	if c.file != nil {
		n += int(min(c.file.left, math.MaxInt32))
	}
	return n
}

// bufferedOut is the number of bytes in out not yet written, and of
// encoded output (Codec) not yet written.
func (c *conn) bufferedOut() int {
	n := len(c.out) - c.outOff
	if c.x != nil {
		n += len(c.x.enc) - c.x.encOff
	}
	return n
}

// idle reports a keep-alive connection between requests, with nothing
// buffered or in flight.
func (c *conn) idle() bool {
	return c.state == connActive && len(c.in) == 0 && c.pendingOut() == 0 && c.async == nil
}

// movable reports a connection the loop accepted that another process may
// serve from its next request on: idle, served without a Codec, with
// nothing pending on the loop's side.
func (c *conn) movable() bool {
	return c.flags&(connAccepted|connDeferred|connInputWaits|connPeerEOF) == connAccepted &&
		c.idle() && c.x == nil && c.body == nil && c.file == nil
}

// parseable reports whether buffered input may be served now: not while a
// response is pending off the loop or a file body is being sent (both come
// before any later response), above the output high-water mark, or before
// more input arrived for an incomplete request.
func (c *conn) parseable(highWater int) bool {
	return c.state == connActive && c.async == nil && c.file == nil && c.body == nil &&
		c.flags&connNeedInput == 0 && c.pendingOut() <= highWater
}
