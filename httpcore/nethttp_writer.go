package httpcore

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/clusterd/clusterd/internal/rawfd"
)

// netWriter is the http.ResponseWriter of the net/http adapter, over the
// response's ResponseWriter. Its header map is copied when the status is
// written, as net/http does, except for trailers.
type netWriter struct {
	w       *ResponseWriter
	req     *http.Request
	hdr     http.Header
	wrote   bool     // the final status is written
	trailer []string // trailer fields declared by the Trailer header
}

var (
	_ http.Flusher  = (*netWriter)(nil)
	_ io.ReaderFrom = (*netWriter)(nil)
)

func (nw *netWriter) Header() http.Header { return nw.hdr }

// WriteHeader writes the status. A 1xx status other than 101 sends an
// interim response with the current header fields (none to HTTP/1.0
// clients); only the first final status counts.
func (nw *netWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	switch {
	case nw.wrote:
	case code < 200:
		nw.writeInterim(code)
	default:
		nw.wrote = true
		nw.copyHeader()
		nw.w.WriteHeader(code)
	}
}

// copyHeader hands the header fields to the ResponseWriter, in key order.
func (nw *netWriter) copyHeader() {
	for _, k := range sortedKeys(nw.hdr) {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range nw.hdr[k] {
			nw.w.AddHeader(k, v)
		}
	}
	if _, ok := nw.hdr["Content-Type"]; !ok && len(nw.hdr["Transfer-Encoding"]) == 0 {
		nw.w.flags |= rwSniff
	}
	for _, v := range nw.hdr["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
				nw.trailer = append(nw.trailer, k)
			}
		}
	}
}

func sortedKeys(h http.Header) []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// writeInterim sends a 1xx response. 101 is not supported (no Hijack), and
// HTTP/1.0 clients get none (RFC 9110 15.2).
func (nw *netWriter) writeInterim(code int) {
	switch {
	case code == http.StatusSwitchingProtocols || nw.req.ProtoMinor == 0:
		return
	case code == http.StatusContinue:
		nw.w.sendContinue()
		return
	}
	b := appendStatusLine(nil, code)
	for _, k := range sortedKeys(nw.hdr) {
		if !validName(k) {
			continue
		}
		for _, v := range nw.hdr[k] {
			b = append(append(append(append(b, k...), ": "...), cleanValue(v)...), "\r\n"...)
		}
	}
	nw.w.writeInterim(append(b, "\r\n"...))
}

func (nw *netWriter) Write(p []byte) (int, error) {
	if !nw.wrote {
		nw.WriteHeader(http.StatusOK)
	}
	n, err := nw.w.Write(p)
	return n, netError(err)
}

func (nw *netWriter) WriteString(s string) (int, error) {
	if !nw.wrote {
		nw.WriteHeader(http.StatusOK)
	}
	n, err := nw.w.WriteString(s)
	return n, netError(err)
}

// netError maps the ResponseWriter's errors to net/http's.
func netError(err error) error {
	switch err {
	case ErrContentLength:
		return http.ErrContentLength
	case ErrBodyNotAllowed:
		return http.ErrBodyNotAllowed
	}
	return err
}

// Flush implements http.Flusher.
func (nw *netWriter) Flush() { _ = nw.FlushError() }

// FlushError sends what was written so far; http.ResponseController uses it.
func (nw *netWriter) FlushError() error {
	if !nw.wrote {
		nw.WriteHeader(http.StatusOK)
	}
	return nw.w.Flush()
}

// EnableFullDuplex is for http.ResponseController: the body can always be
// read while the response is written.
func (nw *netWriter) EnableFullDuplex() error { return nil }

// end ends the response once the handler has returned.
func (nw *netWriter) end() {
	if !nw.wrote {
		nw.WriteHeader(http.StatusOK)
	}
	if tr := nw.trailers(); len(tr) > 0 {
		nw.w.setTrailer(tr)
	}
	nw.w.End()
}

// trailers returns the trailer fields: the declared ones and those set with
// http.TrailerPrefix.
func (nw *netWriter) trailers() []field {
	var fields []field
	for _, k := range nw.trailer {
		for _, v := range nw.hdr[k] {
			fields = append(fields, field{k, v})
		}
	}
	for _, k := range sortedKeys(nw.hdr) {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range nw.hdr[k] {
				fields = append(fields, field{name, v})
			}
		}
	}
	return fields
}

// ReadFrom copies src into the body. The part of a file that http.ServeContent
// (and so http.FileServer) copies after setting Content-Length goes out with
// sendfile(2); anything else is copied through Write.
func (nw *netWriter) ReadFrom(src io.Reader) (int64, error) {
	if lr, ok := src.(*io.LimitedReader); ok && nw.wrote && nw.w.length == lr.N && nw.w.written == 0 {
		if f, ok := lr.R.(*os.File); ok && nw.req.Method != "HEAD" {
			if n, ok, err := nw.sendFile(f, lr.N); ok {
				lr.N -= n
				return n, err
			}
		}
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	return io.CopyBuffer(writerOnly{nw}, src, *buf)
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// writerOnly hides ReadFrom from io.CopyBuffer.
type writerOnly struct{ io.Writer }

// sendFile sends the next n bytes of the regular file f with SendFile, on a
// duplicate of its descriptor (f stays the caller's), and moves f's offset
// past them. It reports false, having done nothing, if it cannot.
func (nw *netWriter) sendFile(f *os.File, n int64) (int64, bool, error) {
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
	return n, true, nw.w.SendFile(dup, off, n)
}

// dupFile returns a close-on-exec duplicate of f's descriptor.
func dupFile(f *os.File) (*os.File, error) {
	nfd, err := rawfd.DupFile(f)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(nfd), f.Name()), nil
}
