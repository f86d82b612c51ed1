package httpcore

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// A ResponseWriter builds the response to one request. The status is 200
// unless WriteHeader says otherwise. The engine adds Date (unless set),
// Connection: close when the connection closes after the response, or
// Connection: keep-alive for an HTTP/1.0 keep-alive client. Transfer-Encoding
// set by a handler is ignored, and "Connection: close" closes the connection
// after the response.
//
// # Body framing
//
// A body written by a handler on the loop is buffered and sent with a
// Content-Length when ServeHTTP returns. A body is streamed instead — the
// head goes out first and the body follows in pieces — after Flush, or when
// an asynchronous response (see Async) has more than 64 KiB buffered. A
// streamed body uses Transfer-Encoding: chunked for HTTP/1.1 requests and
// is delimited by closing the connection for HTTP/1.0 ones, unless the
// handler set Content-Length: then the body is sent as is, Write refuses
// bytes beyond the length (ErrContentLength), and a body that ends short
// closes the connection. SendFile sends a file with sendfile(2).
//
// # Backpressure
//
// Writes to an asynchronous response are handed to the loop. A Write from
// another goroutine blocks while more than 256 KiB of the response is
// waiting to be written to the client, so a slow reader holds a bounded
// amount of memory. Once the connection is gone, a Write that hands bytes
// on, and Flush, return ErrConnClosed (smaller writes are dropped at End).
// Writes made on the loop goroutine (in ServeHTTP or a Server.Post function)
// never block, since the loop could not drain the output meanwhile.
//
// Without Async a ResponseWriter must not be used after ServeHTTP returns.
// It must not be used by two goroutines at once.
type ResponseWriter struct {
	l         *loop
	c         *conn
	hdr       []field
	trailer   []field // trailer fields of a chunked body, sent at the end
	body      []byte  // body bytes not handed on yet
	status    int
	start     int64    // loop time the request was dispatched
	reqLine   []byte   // method, target and version, kept for Config.OnResponse
	discarded int64    // body bytes counted, not kept, for a HEAD request
	length    int64    // Content-Length set by the handler (or SendFile), -1 if none
	written   int64    // body bytes accepted by Write
	file      *fileOut // SendFile body, until the loop takes it
	flags     rwFlags
	state     atomic.Uint32 // rwSync, rwAsync, rwEnded
	serving   atomic.Bool   // in ServeHTTP after Async: the loop goroutine may write
	rl        relay         // streamed output on its way to the loop
	reason    string        // reason phrase for the status line; "": StatusText
	wdeadline time.Time     // see SetWriteDeadline
	wtimer    *time.Timer   // closes the connection at wdeadline
}

type rwFlags uint16

const (
	rwHead        rwFlags = 1 << iota // HEAD request: the body is not sent
	rwHTTP10                          // HTTP/1.0 request
	rwKeepAlive                       // the request allows keep-alive
	rwClose                           // the handler set Connection: close
	rwHasDate                         // the handler set Date
	rwWroteHeader                     // the status can no longer change
	rwStreaming                       // the head is handed on; the body follows in pieces
	rwChunked                         // ... with chunked framing
	rwCloseDelim                      // ... delimited by closing the connection
	rwSendFile                        // SendFile was called: no more body
	rwSniff                           // add a Content-Type sniffed from the body
	rwAborted                         // the handler failed: close the connection
	rwAbort500                        // ... answering 500 if nothing was sent
	rwKeep                            // something besides the handler may hold w: never reuse it
)

// ResponseWriter states. rwSync -> rwAsync (Async) -> rwEnded (End). Only
// the loop reads a writer in rwSync or rwEnded; in rwAsync it belongs to the
// handler's goroutines, and the loop touches only its relay.
const (
	rwSync uint32 = iota
	rwAsync
	rwEnded
)

// Streaming thresholds.
const (
	streamChunk     = 64 << 10  // an asynchronous body is handed on in pieces of this size
	streamHighWater = 256 << 10 // a writer waits while more output than this is pending
	streamLowWater  = 128 << 10 // ... until it is back under this
)

var (
	// ErrContentLength is returned by Write for bytes beyond the
	// Content-Length the handler set.
	ErrContentLength = errors.New("httpcore: wrote more than the declared Content-Length")
	// ErrConnClosed is returned by writes to a response whose connection
	// has closed.
	ErrConnClosed = errors.New("httpcore: connection closed")
	// ErrBodyStarted is returned by SendFile after the body was written
	// (or a file was sent), and by Write after SendFile.
	ErrBodyStarted = errors.New("httpcore: response body already started")
)

func newResponseWriter(l *loop) *ResponseWriter {
	w := &ResponseWriter{l: l, hdr: make([]field, 0, 8)}
	w.rl.init()
	w.reset()
	return w
}

// begin prepares w for the request r on c.
func (w *ResponseWriter) begin(c *conn, r *Request) {
	w.c = c
	if r.method == "HEAD" {
		w.flags |= rwHead
	}
	if r.minor == 0 {
		w.flags |= rwHTTP10
	}
	if r.keepAlive() {
		w.flags |= rwKeepAlive
	}
}

// reset makes a finished synchronous writer ready for the next request.
func (w *ResponseWriter) reset() {
	clear(w.hdr)
	w.hdr = w.hdr[:0]
	w.trailer = nil
	if cap(w.body) > maxScratchBody {
		w.body = nil
	}
	w.body = w.body[:0]
	w.c = nil
	w.status = 200
	w.reason = ""
	w.discarded = 0
	w.length = -1
	w.written = 0
	w.file = nil
	if w.flags&rwStreaming != 0 {
		w.rl.reset() // only a streamed response uses the relay on the loop
	}
	w.rl.gone = nil
	w.flags = 0
	w.state.Store(rwSync)
}

// SetHeader sets a response header field, replacing any values it had.
// Fields with an invalid name are dropped; CR, LF and NUL in a value become
// spaces.
func (w *ResponseWriter) SetHeader(name, value string) {
	if w.special(name, value) {
		return
	}
	w.hdr = deleteField(w.hdr, name)
	w.hdr = append(w.hdr, field{name, cleanValue(value)})
}

// AddHeader adds a value to a response header field.
func (w *ResponseWriter) AddHeader(name, value string) {
	if w.special(name, value) {
		return
	}
	w.hdr = append(w.hdr, field{name, cleanValue(value)})
}

// DelHeader removes a response header field.
func (w *ResponseWriter) DelHeader(name string) { w.hdr = deleteField(w.hdr, name) }

// special handles the fields the engine writes itself and reports whether
// name needs no entry in the header list.
func (w *ResponseWriter) special(name, value string) bool {
	switch {
	case !validName(name):
		return true
	case equalFold(name, "Content-Length"):
		if n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64); err == nil && n >= 0 {
			w.length = n
		}
		return true
	case equalFold(name, "Transfer-Encoding"):
		return true
	case equalFold(name, "Connection"):
		for _, item := range strings.Split(value, ",") {
			if equalFold(strings.TrimSpace(item), "close") {
				w.flags |= rwClose
			}
		}
		return true
	case equalFold(name, "Date"):
		w.flags |= rwHasDate
	}
	return false
}

// WriteHeader sets the status code. Only the first call, before any Write,
// counts. Informational (1xx) codes are not supported; they and codes outside
// 100-999 panic.
func (w *ResponseWriter) WriteHeader(code int) {
	if code < 200 || code > 999 {
		panic(fmt.Sprintf("httpcore: invalid WriteHeader code %d", code))
	}
	if w.flags&rwWroteHeader != 0 {
		return
	}
	w.flags |= rwWroteHeader
	w.status = code
}

// Write adds p to the response body. See the type's documentation for when
// it blocks and how the body is framed.
func (w *ResponseWriter) Write(p []byte) (int, error) { return writeBody(w, p) }

// WriteString adds s to the response body, like Write.
func (w *ResponseWriter) WriteString(s string) (int, error) { return writeBody(w, s) }

func writeBody[T string | []byte](w *ResponseWriter, p T) (int, error) {
	if err := w.beforeWrite(); err != nil {
		return 0, err
	}
	var err error
	if w.length >= 0 && w.flags&rwHead == 0 && int64(len(p)) > w.length-w.written {
		p, err = p[:max(w.length-w.written, 0)], ErrContentLength
	}
	if w.flags&rwHead != 0 {
		w.discarded += int64(len(p))
		return len(p), err
	}
	w.written += int64(len(p))
	if w.flags&rwStreaming == 0 && w.state.Load() == rwSync {
		w.body = append(w.body, p...) // on the loop: the whole body is buffered
		return len(p), err
	}
	if n, herr := streamBody(w, p); herr != nil {
		return n, w.writeErr(herr)
	}
	return len(p), err
}

// streamBody adds p to a streamed or asynchronous body, handing it on
// whenever streamChunk bytes are buffered.
func streamBody[T string | []byte](w *ResponseWriter, p T) (int, error) {
	n := 0
	for {
		if len(w.body) >= streamChunk {
			if err := w.handOn(); err != nil {
				return n, err
			}
		}
		if n == len(p) {
			return n, nil
		}
		k := min(len(p)-n, streamChunk-len(w.body))
		w.body = append(w.body, p[n:n+k]...)
		n += k
	}
}

func (w *ResponseWriter) beforeWrite() error {
	switch {
	case w.state.Load() == rwEnded:
		return ErrResponseEnded
	case w.flags&rwSendFile != 0:
		return ErrBodyStarted
	}
	w.flags |= rwWroteHeader
	if !bodyAllowed(w.status) {
		return ErrBodyNotAllowed
	}
	return nil
}

// Flush sends the head and the body written so far without waiting for the
// response to end; the body is streamed from then on. On the loop the bytes
// are queued and written when ServeHTTP returns; from another goroutine,
// after Async, they are handed to the loop at once, and Flush may block like
// Write. Flush returns ErrConnClosed once the connection is gone.
func (w *ResponseWriter) Flush() error {
	switch {
	case w.state.Load() == rwEnded:
		return ErrResponseEnded
	case w.flags&rwSendFile != 0:
		return nil // the file goes out as soon as the response ends
	}
	w.flags |= rwWroteHeader
	return w.writeErr(w.handOn())
}

// SendFile sends n bytes of f starting at offset as the response body using
// sendfile(2). The ResponseWriter takes ownership of f and closes it once the
// body is sent or the connection closes (at once if SendFile fails). It sets
// Content-Length: n (unless the handler set it), and for HEAD, 204 and 304
// sends no body (still closes f). No Write may follow; Write after SendFile
// returns an error. Callable from the handler or, after Async, from any
// goroutine before End.
//
// The head and any earlier pipelined responses are written first; requests
// pipelined behind this one are served once the file is sent. If f holds
// fewer than offset+n bytes, or the handler set a larger Content-Length, the
// connection is closed after what could be sent.
func (w *ResponseWriter) SendFile(f *os.File, offset, n int64) error {
	err := w.beforeSendFile(f, offset, n)
	if err == nil && w.flags&rwHead == 0 && bodyAllowed(w.status) {
		w.file, err = newFileOut(f, offset, n)
		if err == nil {
			f = nil // w.file owns it
		}
	}
	if f != nil {
		_ = f.Close()
	}
	if err != nil {
		return err
	}
	w.flags |= rwSendFile | rwWroteHeader
	if w.length < 0 {
		w.length = n
	}
	return nil
}

func (w *ResponseWriter) beforeSendFile(f *os.File, offset, n int64) error {
	switch {
	case f == nil:
		return errors.New("httpcore: SendFile: nil file")
	case offset < 0 || n < 0:
		return fmt.Errorf("httpcore: SendFile: invalid offset %d or length %d", offset, n)
	case w.state.Load() == rwEnded:
		return ErrResponseEnded
	case w.flags&(rwSendFile|rwStreaming) != 0 || len(w.body) > 0 || w.written > 0 || w.discarded > 0:
		return ErrBodyStarted
	}
	return nil
}

// Async marks the response as finished later: ServeHTTP may return, and
// then any goroutine may write the response and must call End exactly once.
// Until End the loop leaves w alone; responses to requests pipelined behind
// this one wait and go out after it. Async must be called from ServeHTTP.
func (w *ResponseWriter) Async() {
	if w.state.CompareAndSwap(rwSync, rwAsync) {
		w.serving.Store(true) // until ServeHTTP returns
	}
}

// End finishes a response started with Async. It is safe from any
// goroutine and never blocks; calls after the first, or without Async, do
// nothing. The loop queues the response in request order. The
// ResponseWriter must not be used after End.
func (w *ResponseWriter) End() {
	w.stopWriteTimer()
	if w.state.CompareAndSwap(rwAsync, rwEnded) {
		w.l.s.postEnd(w)
	}
}

// abort ends an asynchronous response whose handler failed: the connection
// closes after the output queued before it, preceded by a 500 response if
// internalError is set and nothing of this response was sent.
func (w *ResponseWriter) abort(internalError bool) {
	if w.state.Load() != rwAsync {
		return
	}
	w.flags |= rwAborted
	if internalError {
		w.flags |= rwAbort500
	}
	w.End()
}

// dropFile closes a file passed to SendFile that will not be sent.
func (w *ResponseWriter) dropFile() {
	if w.file != nil {
		w.file.close()
		w.file = nil
	}
}

// keepAlive reports whether the connection may stay open after w.
func (w *ResponseWriter) keepAlive() bool {
	return w.flags&rwKeepAlive != 0 && w.flags&rwClose == 0
}

// SetWriteDeadline bounds the time for writing the rest of an
// asynchronous response: once t has passed the connection is closed, and
// Write and Flush fail with an error wrapping os.ErrDeadlineExceeded. The
// zero t removes the deadline. Config.WriteTimeout applies as well. It
// returns ErrNotAsync without Async and ErrResponseEnded after End.
func (w *ResponseWriter) SetWriteDeadline(t time.Time) error {
	switch w.state.Load() {
	case rwSync:
		return ErrNotAsync
	case rwEnded:
		return ErrResponseEnded
	}
	w.stopWriteTimer()
	w.wdeadline = t
	w.flags |= rwKeep // the timer's function may outlive the response
	if !t.IsZero() {
		w.wtimer = time.AfterFunc(time.Until(t), func() {
			w.l.s.Post(func() { w.l.writeDeadlinePassed(w) })
		})
	}
	return nil
}

func (w *ResponseWriter) stopWriteTimer() {
	if w.wtimer != nil {
		w.wtimer.Stop()
		w.wtimer = nil
	}
}

// writeErr reports ErrConnClosed as a deadline error if the write
// deadline closed the connection.
func (w *ResponseWriter) writeErr(err error) error {
	if err == ErrConnClosed && !w.wdeadline.IsZero() && !time.Now().Before(w.wdeadline) {
		return errWriteDeadline
	}
	return err
}

// writeDeadlinePassed closes the connection of w if its response is still
// being written. Loop only.
func (l *loop) writeDeadlinePassed(w *ResponseWriter) {
	if c := w.c; c != nil && c.async == w && c.state != connClosed {
		l.closeConn(c)
	}
}
