package nethttp

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// Hijack implements http.Hijacker: the connection leaves the event loop as
// a net.Conn; bytes the client sent past the request head wait in the
// returned reader. A status written before (101 Switching Protocols, say)
// goes out first, with the header fields, as net/http sends it.
func (rw *responseWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if rw.j.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if rw.status != 0 && rw.status != http.StatusSwitchingProtocols {
		if err := rw.w.Flush(); err != nil {
			return nil, nil, err
		}
	}
	nc, in, err := rw.w.Hijack()
	if err != nil {
		return nil, nil, err
	}
	rw.j.hijacked = true
	rw.j.a.pool.leave()
	if rw.status == http.StatusSwitchingProtocols {
		if _, err := nc.Write(rw.switchingHead()); err != nil {
			_ = nc.Close()
			return nil, nil, err
		}
	}
	var r io.Reader = nc
	if len(in) > 0 {
		r = io.MultiReader(&onceReader{b: in}, nc)
	}
	br := bufio.NewReaderSize(r, max(4096, len(in)))
	if len(in) > 0 {
		_, _ = br.Peek(len(in)) // Buffered reports them, as net/http's does
	}
	return nc, bufio.NewReadWriter(br, bufio.NewWriter(nc)), nil
}

// switchingHead is the 101 head written at Hijack, as net/http writes it:
// the status line, the header fields and Date.
func (rw *responseWriter) switchingHead() []byte {
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h := rw.hdr.Clone()
	if _, ok := h["Date"]; !ok {
		h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	}
	_ = h.Write(&b)
	b.WriteString("\r\n")
	return []byte(b.String())
}

// onceReader returns b, then EOF.
type onceReader struct{ b []byte }

func (o *onceReader) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, o.b)
	o.b = o.b[n:]
	return n, nil
}
