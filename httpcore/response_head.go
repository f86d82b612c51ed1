package httpcore

import (
	"net/http"
	"strconv"
	"strings"
)

// appendResponse serializes a buffered response onto b; date is the cached
// Date line and keep whether the connection stays open.
func (w *ResponseWriter) appendResponse(b, date []byte, keep bool) []byte {
	b = w.appendHead(b, w.contentLength(), false)
	b = appendHeadEnd(b, date, w.flags&rwHasDate != 0, keep, w.flags&rwHTTP10 != 0)
	if w.flags&rwHead == 0 && bodyAllowed(w.status) {
		b = append(b, w.body...)
	}
	return b
}

// appendHead appends the status line and the handler's fields, plus
// Content-Length if length >= 0 and Transfer-Encoding: chunked if chunked.
// Date, Connection and the final CRLF are left to appendHeadEnd: the loop
// decides them.
func (w *ResponseWriter) appendHead(b []byte, length int64, chunked bool) []byte {
	if w.reason != "" {
		b = append(append(append(append(append(b, "HTTP/1.1 "...), strconv.Itoa(w.status)...), ' '), w.reason...), "\r\n"...)
	} else {
		b = appendStatusLine(b, w.status)
	}
	for _, f := range w.hdr {
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	if w.flags&rwSniff != 0 && len(w.body) > 0 && bodyAllowed(w.status) {
		b = append(b, "Content-Type: "...)
		b = append(b, http.DetectContentType(w.body)...)
		b = append(b, "\r\n"...)
	}
	if length >= 0 {
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, length, 10)
		b = append(b, "\r\n"...)
	}
	if chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	return b
}

// appendHeadEnd ends a head: the Date line unless the handler set one, the
// Connection field when needed, and the empty line.
func appendHeadEnd(b, date []byte, hasDate, keep, http10 bool) []byte {
	if !hasDate {
		b = append(b, date...)
	}
	switch {
	case !keep:
		b = append(b, "Connection: close\r\n"...)
	case http10:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	return append(b, "\r\n"...)
}

// contentLength is the Content-Length of a buffered response, or -1 for
// none: the body's length, the file's for SendFile, and for HEAD what the
// handler set or wrote.
func (w *ResponseWriter) contentLength() int64 {
	switch {
	case !bodyAllowed(w.status):
		return -1
	case w.flags&rwSendFile != 0 && w.flags&rwHead == 0:
		return w.length
	case w.flags&rwHead == 0:
		return int64(len(w.body))
	case len(w.trailer) > 0 && w.length < 0:
		return -1 // as the chunked GET response would be
	case w.length >= 0:
		return w.length
	case w.discarded > 0:
		return w.discarded
	}
	return -1
}

// startStream commits the head of a streamed response and chooses its
// framing: none for HEAD, 1xx, 204 and 304, the handler's Content-Length,
// chunked for HTTP/1.1, or closing the connection for HTTP/1.0. The head
// goes to the relay, where the loop adds Date and Connection.
func (w *ResponseWriter) startStream() {
	w.flags |= rwStreaming | rwWroteHeader
	keep := w.keepAlive()
	length := int64(-1)
	switch {
	case w.flags&rwHead != 0:
		length = w.length
	case !bodyAllowed(w.status):
	case w.length >= 0:
		length = w.length
	case w.flags&rwHTTP10 != 0:
		w.flags |= rwCloseDelim
		keep = false
	default:
		w.flags |= rwChunked
	}
	chunked := w.flags&rwChunked != 0
	head := w.appendHead(make([]byte, 0, 256), length, chunked)
	w.rl.setHead(head, streamMeta{
		keep: keep, chunked: chunked, hasDate: w.flags&rwHasDate != 0, http10: w.flags&rwHTTP10 != 0,
	})
}

// wantsChunked reports whether a response not streamed so far must be, to
// carry its trailer fields.
func (w *ResponseWriter) wantsChunked() bool {
	return len(w.trailer) > 0 && w.flags&(rwHead|rwHTTP10|rwSendFile) == 0 && w.length < 0 &&
		bodyAllowed(w.status)
}

// streamShort reports whether a streamed body framed by the handler's
// Content-Length ended short of it.
func (w *ResponseWriter) streamShort() bool {
	return w.flags&(rwHead|rwChunked|rwCloseDelim) == 0 && bodyAllowed(w.status) &&
		w.length >= 0 && w.written != w.length
}

// appendChunk appends p as a body piece: framed as a chunk, or as is.
func appendChunk(b, p []byte, chunked bool) []byte {
	if !chunked {
		return append(b, p...)
	}
	if len(p) == 0 {
		return b // a zero-size chunk would end the body
	}
	b = strconv.AppendInt(b, int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	return append(b, "\r\n"...)
}

// appendLastChunk ends a chunked body: the last chunk, trailer fields and
// the empty line.
func appendLastChunk(b []byte, trailer []field) []byte {
	b = append(b, "0\r\n"...)
	for _, f := range trailer {
		b = append(b, f.name...)
		b = append(b, ": "...)
		b = append(b, f.value...)
		b = append(b, "\r\n"...)
	}
	return append(b, "\r\n"...)
}

// setTrailer sets the trailer fields sent after a chunked body; a response
// that has them is chunked unless it is framed otherwise already.
func (w *ResponseWriter) setTrailer(fields []field) {
	w.trailer = w.trailer[:0]
	for _, f := range fields {
		if validName(f.name) && !forbiddenTrailer(f.name) {
			w.trailer = append(w.trailer, field{f.name, cleanValue(f.value)})
		}
	}
}

// forbiddenTrailer reports fields that must not be sent as trailers
// (RFC 9110 6.5.1): framing, routing and the like.
func forbiddenTrailer(name string) bool {
	for _, f := range [...]string{"Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection", "Content-Type"} {
		if equalFold(name, f) {
			return true
		}
	}
	return false
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
	if !hasCRLFNUL(v) {
		return v
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, v)
}

// hasCRLFNUL reports whether v has CR, LF or NUL; a loop over the bytes is
// quicker than strings.ContainsAny for header values.
func hasCRLFNUL(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= '\r' && (c == '\r' || c == '\n' || c == 0) {
			return true
		}
	}
	return false
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
