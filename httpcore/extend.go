package httpcore

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The API for protocol layers built on the engine, such as the net/http
// adapter: streamed request bodies, interim responses, trailers, aborting
// a response, deadlines, and taking a connection out of the loop (Hijack).

// A StreamingHandler is a Handler that takes request bodies as they
// arrive: ServeHTTP is called as soon as a request's head is in, and the
// body follows through Request.BodyStream. The connection is read only
// while the body has room (64 KiB), so a slow reader holds the client
// back instead of growing memory. Such a handler normally calls
// ResponseWriter.Async and reads the body from another goroutine.
type StreamingHandler interface {
	Handler
	// StreamBodies marks the handler; it is never called.
	StreamBodies()
}

// A ReusingHandler is a Handler that never touches a ResponseWriter once
// it has called End (or Abort) on it, not even to call End again, and
// leaves no goroutine that might. The loop then reuses the writer of an
// asynchronous response for a later request once the response is queued,
// which saves allocating one per asynchronous request. Writers of
// responses that were streamed, hijacked, aborted, given a write deadline,
// or had a request body or a panicking handler are not reused.
type ReusingHandler interface {
	Handler
	// ReuseWriters marks the handler; it is never called.
	ReuseWriters()
}

// An HTTP2PrefaceHandler is a Handler that also takes HTTP/2 connections
// with prior knowledge (RFC 9113 3.3). When HTTP2Preface reports true, a
// connection whose first request line is "PRI * HTTP/2.0" followed by an
// empty line is passed to ServeHTTP as a request with method PRI, target
// "*", protocol "HTTP/2.0" and no header fields; the handler is expected to
// Hijack the connection, whose buffered bytes then start with the rest of
// the client preface ("SM\r\n\r\n"). Otherwise such a request is refused
// with 505, as any other major version is.
type HTTP2PrefaceHandler interface {
	Handler
	HTTP2Preface() bool
}

// A Field is a header or trailer field.
type Field struct{ Name, Value string }

// RawHead returns the request head as received: the request line and
// header fields, up to and including the empty line. The strings returned
// by Method, Target, Proto and the header fields are substrings of it. It
// is valid only until ServeHTTP returns.
func (r *Request) RawHead() []byte { return r.head }

// Chunked reports whether the request body is chunked.
func (r *Request) Chunked() bool { return r.flags&reqChunked != 0 }

// KeepAlive reports whether the client lets the connection persist after
// this request (RFC 9112 9.3): HTTP/1.1 without Connection: close, or
// HTTP/1.0 with Connection: keep-alive.
func (r *Request) KeepAlive() bool { return r.keepAlive() }

// BodyStream returns the body of a request served by a StreamingHandler,
// or nil if the request has none. It stays valid after ServeHTTP returns,
// until the response ends.
func (r *Request) BodyStream() *Body {
	if r.stream == nil {
		return nil
	}
	return (*Body)(r.stream)
}

// A Body is a request body streamed to a StreamingHandler as it arrives.
// Read returns io.EOF at its end; a body cut short by the client fails
// with io.ErrUnexpectedEOF, one that exceeds Config.MaxBodyBytes with a
// *BodyTooLargeError, one that does not arrive within
// Config.RequestTimeout or the read deadline with an error wrapping
// os.ErrDeadlineExceeded, and any read after Close with ErrBodyClosed. The
// first Read answers a client waiting for 100 Continue.
//
// A Body is safe for one reader goroutine at a time; SetReadDeadline and
// Close are safe from any goroutine.
type Body bodyPipe

// A BodyTooLargeError is returned by Body.Read for a body longer than
// Config.MaxBodyBytes.
type BodyTooLargeError struct{ Limit int64 }

func (e *BodyTooLargeError) Error() string {
	return fmt.Sprintf("httpcore: request body larger than %d bytes", e.Limit)
}

var (
	// ErrBodyClosed is returned by Body.Read after Close, or once the
	// response has ended.
	ErrBodyClosed = errBodyClosed
	// errReadDeadline is returned by Body.Read once its deadline passed.
	errReadDeadline = fmt.Errorf("httpcore: request body read deadline: %w", os.ErrDeadlineExceeded)
	// errWriteDeadline is returned by writes once the write deadline passed.
	errWriteDeadline = fmt.Errorf("httpcore: response write deadline: %w", os.ErrDeadlineExceeded)
	// ErrNotAsync is returned by ResponseWriter methods that need an
	// asynchronous response (see Async).
	ErrNotAsync = errors.New("httpcore: the response is not asynchronous")
)

// Read reads body bytes as they arrive.
func (b *Body) Read(p []byte) (int, error) {
	n, err := (*bodyPipe)(b).Read(p)
	if err == errBodyTooLarge {
		err = &BodyTooLargeError{Limit: b.l.lim.maxBody}
	}
	return n, err
}

// Close stops reading: buffered bytes are dropped, and so is the rest of
// the body as it arrives. The connection closes after the response if the
// body was not read to its end.
func (b *Body) Close() error {
	(*bodyPipe)(b).Close()
	return nil
}

// VisitTrailers calls f for every trailer field of a chunked body, in
// arrival order, once Read has returned io.EOF.
func (b *Body) VisitTrailers(f func(name, value string)) {
	visit((*bodyPipe)(b).trailers(), f)
}

// SetReadDeadline makes Read fail with an error wrapping
// os.ErrDeadlineExceeded once t has passed and no body bytes are
// buffered; the zero t removes the deadline. Config.RequestTimeout applies
// as well.
func (b *Body) SetReadDeadline(t time.Time) { (*bodyPipe)(b).setReadDeadline(t) }

var _ io.ReadCloser = (*Body)(nil)

// SetReason sets the reason phrase of the status line, instead of
// StatusText's; CR, LF and NUL become spaces. Call it before the head goes
// out.
func (w *ResponseWriter) SetReason(reason string) { w.reason = cleanValue(reason) }

// SniffContentType makes the head carry a Content-Type detected from the
// first bytes of the body (as net/http's DetectContentType does) when the
// handler set none, the status allows a body and the body written before
// the head goes out is not empty.
func (w *ResponseWriter) SniffContentType() { w.flags |= rwSniff }

// WriteInterim sends an informational (1xx) response with fields before
// the final head; it does nothing once the head has gone. 100 Continue is
// sent at most once; 101 is not sent (see Hijack). The caller sends none
// to an HTTP/1.0 client (RFC 9110 15.2). It is safe from the goroutine
// writing the response or the one reading the body.
func (w *ResponseWriter) WriteInterim(code int, fields []Field) {
	switch {
	case code < 100 || code > 199:
		panic(fmt.Sprintf("httpcore: invalid interim status %d", code))
	case code == 101:
		return
	case code == 100:
		w.sendContinue()
		return
	}
	b := appendStatusLine(nil, code)
	for _, f := range fields {
		if validName(f.Name) {
			b = append(append(append(append(b, f.Name...), ": "...), cleanValue(f.Value)...), "\r\n"...)
		}
	}
	w.writeInterim(append(b, "\r\n"...))
}

// SetTrailers sets the trailer fields sent after the body, replacing any
// set before; fields that must not be trailers (framing, routing,
// Content-Type) are dropped. A response with trailers is chunked unless it
// is framed otherwise already (HEAD, HTTP/1.0, a Content-Length, a file).
// Call it before End.
func (w *ResponseWriter) SetTrailers(fields []Field) {
	fs := make([]field, len(fields))
	for i, f := range fields {
		fs[i] = field{f.Name, f.Value}
	}
	w.setTrailer(fs)
}

// Abort ends an asynchronous response whose handler failed, instead of
// End: the connection is closed once the output handed on before is
// written, and nothing more of this response is sent — what was written
// but not flushed is dropped, and a streamed body is left unterminated, so
// the client sees the failure. It does nothing without Async or after End.
func (w *ResponseWriter) Abort() { w.abort(false) }

// OnClientGone makes the loop call f, once, when the client goes away
// (EOF or reset) or the connection closes before the response ends. f
// runs on the loop and must not block. Call it from ServeHTTP.
func (w *ResponseWriter) OnClientGone(f func()) { w.onGone(f) }

// ContentLength returns the Content-Length the handler set, or -1.
func (w *ResponseWriter) ContentLength() int64 { return w.length }

// Written returns the number of body bytes accepted by Write so far.
func (w *ResponseWriter) Written() int64 { return w.written }

// Logger returns the server's logger (Config.Logger).
func (w *ResponseWriter) Logger() hclog.Logger { return w.l.log }
