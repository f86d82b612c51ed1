package httpcore

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Streamed request bodies. A StreamingHandler (the net/http adapter) is
// called as soon as a request's head is in, and its body follows through a
// bodyPipe as it arrives; the connection is read only while the pipe has
// room. Other handlers get the whole body at once.

var (
	// errBodyTimeout ends a body that did not arrive within RequestTimeout.
	errBodyTimeout = fmt.Errorf("httpcore: request body read timeout: %w", os.ErrDeadlineExceeded)
	// errBodyClosed is returned by reads after the body was closed, or
	// after the response ended.
	errBodyClosed = errors.New("httpcore: read on a closed request body")
	// errBodyEOF ends a body cut short by the client.
	errBodyEOF = io.ErrUnexpectedEOF
	// errPipeFull stops decoding until the reader makes room.
	errPipeFull = errors.New("httpcore: request body pipe full")
)

// bodyIn is the loop's side of a request body streamed to a handler.
type bodyIn struct {
	pipe    *bodyPipe
	start   int64 // loop time reading began or resumed: RequestTimeout runs from it
	left    int64 // Content-Length bytes still to come; -1 for chunked
	dec     chunkDecoder
	trailer []field // of a chunked body, passed on at its end
	paused  bool    // the pipe is full
	failed  bool    // the body ended in an error
}

func (b *bodyIn) reading() bool { return !b.paused && !b.failed }

// serveStreaming dispatches the request whose head starts b before its
// body, which then flows through c.body. It returns the head's length.
func (l *loop) serveStreaming(c *conn, r *Request, b []byte) int {
	p := &c.req
	n := p.headLen
	r.head = b[:n]
	if p.bodyLen != 0 {
		c.body = l.newBodyIn(c, r, p)
		r.stream = c.body.pipe
	}
	c.req = pendingReq{}
	l.dispatch(c, r)
	return n
}

func (l *loop) newBodyIn(c *conn, r *Request, p *pendingReq) *bodyIn {
	b := &bodyIn{left: p.bodyLen, start: p.start}
	if b.start == 0 {
		b.start = l.now
	}
	b.pipe = newBodyPipe(l, r.flags&reqExpect100 != 0)
	b.pipe.resume = func() { l.resumeBody(c, b) }
	return b
}

// consume serves the requests at the start of data, passing streamed
// request bodies on, and returns how many bytes it used.
func (l *loop) consume(c *conn, data []byte) int {
	off := 0
	for {
		if c.body != nil {
			off += l.feedBody(c, data[off:])
			if c.body != nil {
				return off
			}
		}
		n := l.serveBatch(c, data[off:])
		off += n
		if n == 0 || c.body == nil {
			return off
		}
	}
}

// feedBody passes the body bytes at the start of data to the pipe and
// returns how many it took. c.body is cleared once the body is complete.
func (l *loop) feedBody(c *conn, data []byte) int {
	b := c.body
	if !b.reading() || len(data) == 0 {
		return 0
	}
	n, done, err := b.feed(data, &l.lim)
	switch {
	case err != nil:
		l.failBody(c, err)
	case done:
		c.body = nil
	}
	return n
}

// resumeBody passes on the input kept while the pipe was full, and reads
// again: the reader has made room.
func (l *loop) resumeBody(c *conn, b *bodyIn) {
	if c.body != b || c.state == connClosed {
		return
	}
	b.paused = false
	if len(c.in) > 0 {
		l.keepInput(c, c.in, l.consume(c, c.in))
	}
	l.process(c)
}

// failBody ends c's streamed body with err; the connection is closed after
// the response, as the rest of the body cannot be found.
func (l *loop) failBody(c *conn, err error) {
	if b := c.body; !b.failed {
		b.failed = true
		b.pipe.fail(err)
	}
}

// dropBody forgets c's streamed body; a reader still at it gets err.
func (l *loop) dropBody(c *conn, err error) {
	if c.body != nil {
		c.body.pipe.fail(err)
		c.body = nil
	}
}

// feed decodes what it can of data into the pipe. It returns the bytes
// used and whether the body is complete.
func (b *bodyIn) feed(data []byte, lim *limits) (int, bool, error) {
	if b.left < 0 {
		return b.feedChunked(data, lim)
	}
	k := int(min(int64(len(data)), b.left))
	n := b.pipe.write(data[:k])
	b.left -= int64(n)
	b.paused = n < k
	if b.left == 0 {
		b.pipe.end(nil)
		return n, true, nil
	}
	return n, false, nil
}

func (b *bodyIn) feedChunked(data []byte, lim *limits) (int, bool, error) {
	n, err := b.dec.decode(data, lim, b.pipe.write, b.addTrailer)
	switch err {
	case nil:
		b.pipe.end(b.trailer)
		return n, true, nil
	case errPipeFull:
		b.paused = true
		return n, false, nil
	case errIncomplete:
		return n, false, nil
	}
	return n, false, err
}

// addTrailer keeps a copy of a trailer field of a chunked body.
func (b *bodyIn) addTrailer(name, value []byte) {
	b.trailer = append(b.trailer, field{string(name), string(value)})
}
