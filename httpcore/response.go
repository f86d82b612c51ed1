package httpcore

import (
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
)

// A ResponseWriter builds the response to one request. The status is 200
// unless WriteHeader says otherwise; the body is buffered and the response is
// queued on the connection when the handler returns or, after Async, when End
// is called. The engine adds Date (unless set), Content-Length (except for
// 1xx, 204 and 304) and Connection: close when the connection closes after
// the response, or Connection: keep-alive for an HTTP/1.0 keep-alive client.
// Transfer-Encoding set by a handler is ignored, Content-Length is used only
// for HEAD responses, and "Connection: close" closes the connection after the
// response.
//
// Without Async a ResponseWriter must not be used after ServeHTTP returns.
type ResponseWriter struct {
	l         *loop
	c         *conn
	hdr       []field
	body      []byte
	status    int
	discarded int64 // body bytes counted, not kept, for a HEAD request
	length    int64 // Content-Length set by the handler, -1 if none
	flags     rwFlags
	state     atomic.Uint32 // rwSync, rwAsync, rwEnded
}

type rwFlags uint8

const (
	rwHead        rwFlags = 1 << iota // HEAD request: the body is not sent
	rwHTTP10                          // HTTP/1.0 request
	rwKeepAlive                       // the request allows keep-alive
	rwClose                           // the handler set Connection: close
	rwHasDate                         // the handler set Date
	rwWroteHeader                     // the status can no longer change
)

// ResponseWriter states. rwSync -> rwAsync (Async) -> rwEnded (End). Only
// the loop reads a writer in rwSync or rwEnded; in rwAsync it belongs to the
// handler's goroutines.
const (
	rwSync uint32 = iota
	rwAsync
	rwEnded
)

func newResponseWriter(l *loop) *ResponseWriter {
	w := &ResponseWriter{l: l, hdr: make([]field, 0, 8)}
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
	if cap(w.body) > maxScratchBody {
		w.body = nil
	}
	w.body = w.body[:0]
	w.c = nil
	w.status = 200
	w.discarded = 0
	w.length = -1
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

// Write appends p to the response body.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	if err := w.beforeWrite(); err != nil {
		return 0, err
	}
	if w.flags&rwHead != 0 {
		w.discarded += int64(len(p))
		return len(p), nil
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

// WriteString appends s to the response body.
func (w *ResponseWriter) WriteString(s string) (int, error) {
	if err := w.beforeWrite(); err != nil {
		return 0, err
	}
	if w.flags&rwHead != 0 {
		w.discarded += int64(len(s))
		return len(s), nil
	}
	w.body = append(w.body, s...)
	return len(s), nil
}

func (w *ResponseWriter) beforeWrite() error {
	if w.state.Load() == rwEnded {
		return ErrResponseEnded
	}
	w.flags |= rwWroteHeader
	if !bodyAllowed(w.status) {
		return ErrBodyNotAllowed
	}
	return nil
}

// Async marks the response as finished later: ServeHTTP may return, and
// then any goroutine may write the response and must call End exactly once.
// Until End the loop leaves w alone; responses to requests pipelined behind
// this one wait and go out after it. Async must be called from ServeHTTP.
func (w *ResponseWriter) Async() { w.state.CompareAndSwap(rwSync, rwAsync) }

// End finishes a response started with Async. It is safe from any
// goroutine; calls after the first, or without Async, do nothing. The loop
// queues the response in request order. The ResponseWriter must not be used
// after End.
func (w *ResponseWriter) End() {
	if w.state.CompareAndSwap(rwAsync, rwEnded) {
		w.l.s.postEnd(w)
	}
}

// keepAlive reports whether the connection may stay open after w.
func (w *ResponseWriter) keepAlive() bool {
	return w.flags&rwKeepAlive != 0 && w.flags&rwClose == 0
}

// appendResponse serializes the response onto b; date is the cached Date
// line and keep whether the connection stays open.
func (w *ResponseWriter) appendResponse(b, date []byte, keep bool) []byte {
	b = appendStatusLine(b, w.status)
	for _, f := range w.hdr {
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if w.flags&rwHasDate == 0 {
		b = append(b, date...)
	}
	if n := w.contentLength(); n >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, n, 10)
		b = append(b, "\r\n"...)
	}
	switch {
	case !keep:
		b = append(b, "Connection: close\r\n"...)
	case w.flags&rwHTTP10 != 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	if w.flags&rwHead == 0 && bodyAllowed(w.status) {
		b = append(b, w.body...)
	}
	return b
}

// contentLength is the Content-Length to send, or -1 for none.
func (w *ResponseWriter) contentLength() int64 {
	switch {
	case !bodyAllowed(w.status):
		return -1
	case w.flags&rwHead == 0:
		return int64(len(w.body))
	case w.length >= 0:
		return w.length
	case w.discarded > 0:
		return w.discarded
	}
	return -1
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !tokenTable[name[i]] {
			return false
		}
	}
	return true
}

// cleanValue replaces CR, LF and NUL, which would split or end the header
// block, with spaces; it copies only if it has to.
func cleanValue(v string) string {
	if !strings.ContainsAny(v, "\r\n\x00") {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
}

func deleteField(fields []field, name string) []field {
	j := 0
	for _, f := range fields {
		if !equalFold(f.name, name) {
			fields[j] = f
			j++
		}
	}
	clear(fields[j:])
	return fields[:j]
}
