package nethttp

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/rawfd"
)

// responseWriter is the http.ResponseWriter of the adapter, over the
// response's httpcore.ResponseWriter. Its header map is copied when the
// status is written, as net/http does, except for trailers.
//
// Writers are pooled: the net/http contract is that a ResponseWriter, and
// so its Header map, is not used once ServeHTTP has returned. A writer goes
// back to the pool when the handler returned normally without hijacking
// the connection, after the response has been ended; it keeps its cleared
// header map and its inline function.
type responseWriter struct {
	j       *job
	w       *httpcore.ResponseWriter
	req     *http.Request
	hdr     http.Header
	status  int      // the final status, once written
	trailer []string // trailer fields declared by the Trailer header
	sniff   bool     // HEAD: Content-Type is still to be sniffed
	inline  func()   // runs j inline (httpcore.ResponseWriter.RunInline)
}

var writers sync.Pool // of *responseWriter

// maxPooledHeader is the most header keys a pooled writer's map may have
// held; a larger map is dropped rather than cleared and kept.
const maxPooledHeader = 32

// newResponseWriter returns a writer for j, from the pool.
func newResponseWriter(j *job) *responseWriter {
	rw, _ := writers.Get().(*responseWriter)
	if rw == nil {
		rw = &responseWriter{}
		rw.inline = func() { rw.j.runInline() }
	}
	rw.j, rw.w, rw.req = j, j.w, j.req
	if rw.hdr == nil {
		rw.hdr = make(http.Header)
	}
	return rw
}

// release puts rw back in the pool once its handler has returned and its
// response has ended.
func (rw *responseWriter) release() {
	hdr := rw.hdr
	if len(hdr) > maxPooledHeader {
		hdr = nil
	} else {
		clear(hdr)
	}
	clear(rw.trailer)
	*rw = responseWriter{hdr: hdr, trailer: rw.trailer[:0], inline: rw.inline}
	writers.Put(rw)
}

var (
	_ http.Flusher  = (*responseWriter)(nil)
	_ http.Hijacker = (*responseWriter)(nil)
	_ io.ReaderFrom = (*responseWriter)(nil)
)

func (rw *responseWriter) Header() http.Header { return rw.hdr }

// WriteHeader writes the status. A 1xx status other than 101 sends an
// interim response with the current header fields (none to HTTP/1.0
// clients); 101 is final, for a handler that hijacks the connection next;
// only the first final status counts.
func (rw *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	switch {
	case rw.status != 0 || rw.j.hijacked:
	case code < 200 && code != http.StatusSwitchingProtocols:
		rw.writeInterim(code)
	case code == http.StatusSwitchingProtocols:
		rw.status = code // the head goes out with Hijack
	default:
		rw.status = code
		rw.copyHeader()
		rw.w.WriteHeader(code)
		if text := statusText(code); text != httpcore.StatusText(code) {
			rw.w.SetReason(text)
		}
	}
}

// statusText is the reason phrase net/http sends.
func statusText(code int) string {
	if text := http.StatusText(code); text != "" {
		return text
	}
	return "status code " + strconv.Itoa(code)
}

// copyHeader hands the header fields to the ResponseWriter, in key order.
func (rw *responseWriter) copyHeader() {
	var buf [16]headerEntry
	entries := buf[:0]
	hasType, hasTE := false, false
	var declared []string
	for k, vs := range rw.hdr {
		switch k {
		case "Content-Type":
			hasType = true
		case "Transfer-Encoding":
			hasTE = len(vs) > 0
		case "Trailer":
			declared = vs
		}
		if !strings.HasPrefix(k, http.TrailerPrefix) {
			entries = append(entries, headerEntry{k, vs})
		}
	}
	if len(entries) > 1 {
		slices.SortFunc(entries, func(a, b headerEntry) int { return strings.Compare(a.key, b.key) })
	}
	for _, e := range entries {
		for _, v := range e.vals {
			rw.w.AddHeader(e.key, v)
		}
	}
	if !hasType && !hasTE {
		rw.w.SniffContentType()
		rw.sniff = rw.req.Method == "HEAD" // the engine keeps no HEAD body to sniff
	}
	for _, v := range declared {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				rw.trailer = append(rw.trailer, k)
			}
		}
	}
}

// A headerEntry is a key of a header map with its values.
type headerEntry struct {
	key  string
	vals []string
}

// sortedKeys appends the keys of h to keys, sorted, and returns the
// result; a caller's array of a few keys saves an allocation.
func sortedKeys(h http.Header, keys []string) []string {
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeInterim sends a 1xx response; HTTP/1.0 clients get none (RFC 9110
// 15.2).
func (rw *responseWriter) writeInterim(code int) {
	if rw.req.ProtoMinor == 0 {
		return
	}
	var fields []httpcore.Field
	if code != http.StatusContinue {
		for _, k := range sortedKeys(rw.hdr, nil) {
			for _, v := range rw.hdr[k] {
				fields = append(fields, httpcore.Field{Name: k, Value: v})
			}
		}
	}
	rw.w.WriteInterim(code, fields)
}

func (rw *responseWriter) Write(p []byte) (int, error) {
	if err := rw.beforeWrite(len(p)); err != nil {
		return 0, err
	}
	if rw.sniff && len(p) > 0 {
		rw.sniffHead(p)
	}
	n, err := rw.w.Write(p)
	return n, netError(err)
}

func (rw *responseWriter) WriteString(s string) (int, error) {
	if err := rw.beforeWrite(len(s)); err != nil {
		return 0, err
	}
	if rw.sniff && len(s) > 0 {
		rw.sniffHead([]byte(s[:min(len(s), 512)]))
	}
	n, err := rw.w.WriteString(s)
	return n, netError(err)
}

// sniffHead sets the Content-Type of a HEAD response from the first bytes
// written, as net/http does.
func (rw *responseWriter) sniffHead(p []byte) {
	rw.sniff = false
	if rw.w.Written() == 0 && rw.status >= 200 && rw.status != 204 && rw.status != 304 {
		rw.w.SetHeader("Content-Type", http.DetectContentType(p))
	}
}

// beforeWrite writes the status if the handler did not, and refuses n
// more bytes as net/http does: after Hijack, for 101, and past the
// Content-Length the handler set (then nothing of them is written).
func (rw *responseWriter) beforeWrite(n int) error {
	if err := rw.checkWrite(); err != nil {
		return err
	}
	if cl := rw.w.ContentLength(); cl >= 0 && rw.w.Written()+int64(n) > cl && rw.req.Method != "HEAD" {
		return http.ErrContentLength
	}
	return nil
}

func (rw *responseWriter) checkWrite() error {
	switch {
	case rw.j.hijacked:
		return http.ErrHijacked
	case rw.status == 0:
		rw.WriteHeader(http.StatusOK)
	case rw.status == http.StatusSwitchingProtocols:
		return http.ErrBodyNotAllowed
	}
	return nil
}

// netError maps the ResponseWriter's errors to net/http's.
func netError(err error) error {
	switch err {
	case httpcore.ErrContentLength:
		return http.ErrContentLength
	case httpcore.ErrBodyNotAllowed:
		return http.ErrBodyNotAllowed
	}
	return err
}

// Flush implements http.Flusher.
func (rw *responseWriter) Flush() { _ = rw.FlushError() }

// FlushError sends what was written so far; http.ResponseController uses it.
func (rw *responseWriter) FlushError() error {
	if err := rw.checkWrite(); err != nil {
		return err
	}
	return rw.w.Flush()
}

// EnableFullDuplex is for http.ResponseController: the body can always be
// read while the response is written.
func (rw *responseWriter) EnableFullDuplex() error { return nil }

// SetReadDeadline is for http.ResponseController: a Read of the request
// body waiting past t fails with an error wrapping os.ErrDeadlineExceeded.
func (rw *responseWriter) SetReadDeadline(t time.Time) error {
	if rw.j.hijacked {
		return http.ErrHijacked
	}
	if rw.j.body != nil {
		rw.j.body.setReadDeadline(t)
	}
	return nil
}

// SetWriteDeadline is for http.ResponseController: once t has passed, the
// connection is closed and writes fail with an error wrapping
// os.ErrDeadlineExceeded.
func (rw *responseWriter) SetWriteDeadline(t time.Time) error {
	if rw.j.hijacked {
		return http.ErrHijacked
	}
	return rw.w.SetWriteDeadline(t)
}

// end ends the response once the handler has returned.
func (rw *responseWriter) end() {
	if rw.status == 0 {
		rw.WriteHeader(http.StatusOK)
	}
	if tr := rw.trailers(); len(tr) > 0 {
		rw.w.SetTrailers(tr)
	}
	rw.w.End()
}

// trailers returns the trailer fields: the declared ones and those set with
// http.TrailerPrefix.
func (rw *responseWriter) trailers() []httpcore.Field {
	fields := rw.collectTrailers()
	slices.SortStableFunc(fields, func(a, b httpcore.Field) int { return strings.Compare(a.Name, b.Name) })
	return fields
}

// collectTrailers returns the trailer fields, in key order as net/http
// writes them.
func (rw *responseWriter) collectTrailers() []httpcore.Field {
	var fields []httpcore.Field
	for _, k := range rw.trailer {
		for _, v := range rw.hdr[k] {
			fields = append(fields, httpcore.Field{Name: k, Value: v})
		}
	}
	for k, vs := range rw.hdr { // trailers sorts them
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				fields = append(fields, httpcore.Field{Name: name, Value: v})
			}
		}
	}
	return fields
}

// ReadFrom copies src into the body. The part of a file that
// http.ServeContent (and so http.FileServer) copies after setting
// Content-Length goes out with sendfile(2); anything else is copied through
// Write.
func (rw *responseWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok && rw.status != 0 && rw.w.ContentLength() == lr.N && rw.w.Written() == 0 {
		if f, ok := lr.R.(*os.File); ok && rw.req.Method != "HEAD" {
			if n, ok, err := rw.sendFile(f, lr.N); ok {
				lr.N -= n
				return n, err
			}
		}
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(writerOnly{rw}, src, *buf)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// sendFile sends the next n bytes of the regular file f with SendFile, on a
// duplicate of its descriptor (f stays the caller's), and moves f's offset
// past them. It reports false, having done nothing, if it cannot.
func (rw *responseWriter) sendFile(f *os.File, n int64) (int64, bool, error) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0, false, nil
	}
	off, err := f.Seek(0, io.SeekCurrent)
	if err != nil || off+n > st.Size() {
		return 0, false, nil
	}
	dup, err := dupFile(f)
	if err != nil {
		return 0, false, nil
	}
	if _, err := f.Seek(off+n, io.SeekStart); err != nil {
		_ = dup.Close()
		return 0, false, nil
	}
	return n, true, rw.w.SendFile(dup, off, n)
}

// dupFile returns a close-on-exec duplicate of f's descriptor.
func dupFile(f *os.File) (*os.File, error) {
	nfd, err := rawfd.DupFile(f)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}
