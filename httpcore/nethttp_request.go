package httpcore

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"unsafe"
)

// newNetRequest builds the *http.Request for r, with context ctx. Its
// strings come from one copy of the raw head, so they outlive the loop's
// buffers. The body is set by the caller.
func newNetRequest(ctx context.Context, r *Request) (*http.Request, error) {
	rb := rebaser{raw: string(r.head), head: r.head}
	target := rb.str(r.target)
	u, err := parseTarget(r.method, target)
	if err != nil {
		return nil, err
	}
	hdr := netHeader(r, rb)
	host := u.Host
	if host == "" {
		host = hdr.Get("Host")
	}
	delete(hdr, "Host")
	req := http.Request{
		Method: rb.str(r.method), URL: u, Proto: rb.str(r.proto), ProtoMajor: 1, ProtoMinor: int(r.minor),
		Header: hdr, Host: host, RequestURI: target, RemoteAddr: r.RemoteAddr(),
		Close: !r.keepAlive(), Body: http.NoBody,
	}
	setFraming(&req, r)
	return req.WithContext(ctx), nil
}

// parseTarget parses the request-target as net/http does: an origin or
// absolute form, "*", or a CONNECT authority.
func parseTarget(method, target string) (*url.URL, error) {
	if method != "CONNECT" || strings.HasPrefix(target, "/") {
		return url.ParseRequestURI(target)
	}
	u, err := url.ParseRequestURI("http://" + target)
	if err != nil {
		return nil, err
	}
	u.Scheme = ""
	return u, nil
}

// netHeader returns r's header fields with canonical keys. The values of
// all fields share one backing array.
func netHeader(r *Request, rb rebaser) http.Header {
	hdr := make(http.Header, len(r.headers))
	vals := make([]string, len(r.headers))
	for i, f := range r.headers {
		key := http.CanonicalHeaderKey(rb.str(f.name))
		vals[i] = rb.str(f.value)
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, vals[i]) // old has no room: this copies
		} else {
			hdr[key] = vals[i : i+1 : i+1]
		}
	}
	return hdr
}

// setFraming sets the body framing fields. Transfer-Encoding moves from
// Header to TransferEncoding, and a chunked body's declared trailers are
// announced in Trailer, as net/http does.
func setFraming(req *http.Request, r *Request) {
	switch {
	case r.flags&reqChunked != 0:
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		req.Trailer = declaredTrailer(req.Header)
	case r.contentLength > 0:
		req.ContentLength = r.contentLength
	}
	delete(req.Header, "Transfer-Encoding")
}

// declaredTrailer returns the trailer fields the Trailer header announces,
// with nil values, or nil if there are none.
func declaredTrailer(hdr http.Header) http.Header {
	var t http.Header
	for _, v := range hdr["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = http.CanonicalHeaderKey(textproto.TrimString(k))
			if k == "" || forbiddenTrailer(k) {
				continue
			}
			if t == nil {
				t = make(http.Header)
			}
			t[k] = nil
		}
	}
	return t
}

// rebaser maps strings pointing into a raw head to the same bytes of a
// copy of it.
type rebaser struct {
	raw  string
	head []byte
}

func (rb rebaser) str(s string) string {
	if s == "" {
		return ""
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(rb.head)))
	if off < uintptr(len(rb.head)) && off+uintptr(len(s)) <= uintptr(len(rb.head)) {
		return rb.raw[off : off+uintptr(len(s))]
	}
	return strings.Clone(s)
}

// netBody is the Body of an adapted request: the bytes of a bodyPipe, with
// net/http's errors and trailers.
type netBody struct {
	p     *bodyPipe
	req   *http.Request
	limit int64 // MaxBodyBytes
	eof   bool
}

// Read reads the body as it arrives. At EOF the trailer fields of a chunked
// body are merged into the request's Trailer; a body over MaxBodyBytes
// fails with *http.MaxBytesError.
func (b *netBody) Read(p []byte) (int, error) {
	n, err := b.p.Read(p)
	switch {
	case err == io.EOF && !b.eof:
		b.eof = true
		b.setTrailer()
	case err == errBodyTooLarge:
		err = &http.MaxBytesError{Limit: b.limit}
	}
	return n, err
}

// Close stops reading; the rest of the body is dropped as it arrives.
func (b *netBody) Close() error {
	b.p.Close()
	return nil
}

func (b *netBody) setTrailer() {
	fields := b.p.trailers()
	if len(fields) == 0 {
		return
	}
	if b.req.Trailer == nil {
		b.req.Trailer = make(http.Header, len(fields))
	}
	for _, f := range fields {
		k := http.CanonicalHeaderKey(f.name)
		b.req.Trailer[k] = append(b.req.Trailer[k], f.value)
	}
}
