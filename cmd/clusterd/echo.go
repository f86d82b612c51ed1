package main

import (
	"bytes"
	"io"
	"math"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/clusterd/clusterd/httpcore"
)

// Sizes of /echo's work. A reply to a body of at most echoInline bytes is
// made on the loop. A larger body is copied and its reply streamed from a
// goroutine in pieces of about echoPiece bytes; a slow reader then holds
// the copy and the engine's bounded in-flight output, never the whole reply.
const (
	echoInline = 16 << 10
	echoPiece  = 32 << 10
)

// echoReply is the request /echo describes, as
// {"method","url","headers","body"}.
type echoReply struct {
	method, url string
	headers     map[string]string
	body        []byte
}

// echo answers with the request as JSON. Repeated header fields are joined
// with ", " as RFC 9110 allows.
func echo(w *httpcore.ResponseWriter, r *httpcore.Request) {
	e := &echoReply{method: r.Method(), url: r.Target(), headers: map[string]string{}, body: r.Body()}
	r.VisitHeaders(func(name, value string) {
		if prev, ok := e.headers[name]; ok {
			value = prev + ", " + value
		}
		e.headers[name] = value
	})
	w.SetHeader("Content-Type", "application/json")
	if len(e.body) <= echoInline {
		_ = e.writeTo(w, nil) // on the loop the response is buffered: no error
		return
	}
	e.detach()
	buf := make([]byte, 0, echoPiece+64)
	w.SetHeader("Content-Length", strconv.FormatInt(e.size(buf), 10))
	w.Async()
	bigEchoes.Add(1)
	go func() {
		_ = e.writeTo(w, buf) // an error means the client has gone
		w.End()
		if bigEchoes.Add(-1) == 0 {
			releaseLater()
		}
	}()
}

// bigEchoes counts the streamed replies in flight; releasing is set while
// a release is scheduled.
var (
	bigEchoes atomic.Int64
	releasing atomic.Bool
)

// releaseAfter is how long after a streamed echo ends the memory of large
// echoes is given back to the OS, if none is in flight by then.
const releaseAfter = time.Second

// releaseLater gives the memory of large echoes back to the OS releaseAfter
// from now, or when the last of those then in flight ends. Left to itself
// the runtime keeps for minutes a heap that grew for a burst of large
// bodies; this costs at most one garbage collection a second.
func releaseLater() {
	if !releasing.CompareAndSwap(false, true) {
		return
	}
	time.AfterFunc(releaseAfter, func() {
		releasing.Store(false)
		if bigEchoes.Load() == 0 { // else the last of those in flight schedules it
			debug.FreeOSMemory()
		}
	})
}

// detach copies what points into the loop's read buffer, which is reused
// once the handler returns.
func (e *echoReply) detach() {
	e.method, e.url = strings.Clone(e.method), strings.Clone(e.url)
	headers := make(map[string]string, len(e.headers))
	for k, v := range e.headers {
		headers[strings.Clone(k)] = strings.Clone(v)
	}
	e.headers = headers
	e.body = bytes.Clone(e.body)
}

// writeTo writes the reply to w, the body in pieces of about echoPiece
// bytes made in buf, as encoding/json would with SetEscapeHTML(false) and
// the fields in the documented order.
func (e *echoReply) writeTo(w io.Writer, buf []byte) error {
	buf = e.appendHead(buf[:0])
	for rest := e.body; ; buf = buf[:0] {
		var k int
		buf, k = appendJSONChars(buf, rest, echoPiece)
		if rest = rest[k:]; len(rest) == 0 {
			buf = append(buf, "\"}\n"...)
		}
		if _, err := w.Write(buf); err != nil || len(rest) == 0 {
			return err
		}
	}
}

// size is the length of the reply writeTo writes.
func (e *echoReply) size(buf []byte) int64 {
	var n countWriter
	_ = e.writeTo(&n, buf)
	return int64(n)
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// appendHead appends the reply up to the opening quote of the body.
func (e *echoReply) appendHead(b []byte) []byte {
	b = appendJSONString(append(b, `{"method":`...), e.method)
	b = appendJSONString(append(b, `,"url":`...), e.url)
	b = append(b, `,"headers":{`...)
	names := make([]string, 0, len(e.headers))
	for k := range e.headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = appendJSONString(append(b, ':'), e.headers[k])
	}
	return append(b, `},"body":"`...)
}

// appendJSONString appends s as a JSON string, quotes included.
func appendJSONString(b []byte, s string) []byte {
	b, _ = appendJSONChars(append(b, '"'), []byte(s), math.MaxInt)
	return append(b, '"')
}

// appendJSONChars appends the characters of s as they appear inside a JSON
// string, as encoding/json writes them with SetEscapeHTML(false): '"', '\\'
// and control characters escaped, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped, everything else as is. It stops at a character boundary
// once dst holds limit bytes, and returns how many bytes of s it consumed.
func appendJSONChars(dst, s []byte, limit int) ([]byte, int) {
	start, i := 0, 0
	for i < len(s) && len(dst)+i-start < limit {
		c := s[i]
		if c >= ' ' && c < utf8.RuneSelf && c != '"' && c != '\\' {
			i++
			continue
		}
		r, size := rune(c), 1
		if c >= utf8.RuneSelf {
			r, size = utf8.DecodeRune(s[i:])
			if (r != utf8.RuneError || size > 1) && r != '\u2028' && r != '\u2029' {
				i += size
				continue
			}
		}
		dst = appendEscape(append(dst, s[start:i]...), r)
		i += size
		start = i
	}
	return append(dst, s[start:i]...), i
}

// appendEscape appends the JSON escape of r.
func appendEscape(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	switch r {
	case '"', '\\':
		return append(b, '\\', byte(r))
	case '\n':
		return append(b, '\\', 'n')
	case '\r':
		return append(b, '\\', 'r')
	case '\t':
		return append(b, '\\', 't')
	case '\b':
		return append(b, '\\', 'b')
	case '\f':
		return append(b, '\\', 'f')
	}
	return append(b, '\\', 'u', hex[r>>12&15], hex[r>>8&15], hex[r>>4&15], hex[r&15])
}
