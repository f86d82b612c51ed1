package nethttp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"reflect"
	"strings"
	"time"
	"unsafe"

	"github.com/clusterd/clusterd/httpcore"
)

// newRequest builds the *http.Request for r, with context ctx. Its strings
// come from one copy of the raw head, so they outlive the loop's buffers.
// The URL and the header values live in rb's scratch (part of the job);
// the body is set by the caller.
func newRequest(ctx context.Context, r *httpcore.Request, sc *reqScratch) (*http.Request, error) {
	head := r.RawHead()
	rb := &rebaser{raw: string(head), head: head}
	target := rb.str(r.Target())
	u, err := parseTarget(r.Method(), target, &sc.url)
	if err != nil {
		return nil, err
	}
	hdr, hostField := header(r, rb, sc.vals[:0])
	host := u.Host
	if host == "" {
		host = hostField
	}
	proto, major := rb.str(r.Proto()), 1
	if proto == "HTTP/2.0" {
		major = 2 // the HTTP/2 preface (see httpcore.HTTP2PrefaceHandler)
	}
	req := &sc.req
	*req = http.Request{
		Method: rb.str(r.Method()), URL: u, Proto: proto, ProtoMajor: major, ProtoMinor: r.ProtoMinor(),
		Header: hdr, Host: host, RequestURI: target, RemoteAddr: r.RemoteAddr(),
		Close: !r.KeepAlive(), Body: http.NoBody,
	}
	setFraming(req, r)
	if !reqCtx.ok {
		return req.WithContext(ctx), nil
	}
	*(*context.Context)(unsafe.Add(unsafe.Pointer(req), reqCtx.off)) = ctx
	return req, nil
}

// reqCtx locates http.Request's unexported context field, so that the
// request built in the job gets its context in place: WithContext would
// allocate a copy of it. If the field is not found as expected (another
// Go release), ok is false and WithContext is used.
var reqCtx = func() (loc struct {
	off uintptr
	ok  bool
}) {
	f, found := reflect.TypeFor[http.Request]().FieldByName("ctx")
	if found && len(f.Index) == 1 && f.Type == reflect.TypeFor[context.Context]() {
		loc.off, loc.ok = f.Offset, true
	}
	return loc
}()

// reqScratch is room in the job for parts of the request that would
// otherwise be allocated one by one: the request itself, the URL of a
// plain target and the values of the first header fields. The request
// owns them for good.
type reqScratch struct {
	req  http.Request
	url  url.URL
	vals [scratchFields]string
}

// scratchFields is how many header values reqScratch holds.
const scratchFields = 4

// parseTarget parses the request-target as net/http does: an origin or
// absolute form, "*", or a CONNECT authority. A plain origin-form target,
// which url.ParseRequestURI would return unchanged as Path and RawQuery,
// is set in u without parsing.
func parseTarget(method, target string, u *url.URL) (*url.URL, error) {
	if path, query, ok := plainTarget(target); ok {
		*u = url.URL{Path: path, RawQuery: query}
		return u, nil
	}
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

// plainTarget splits an origin-form target whose path has only
// characters url.ParseRequestURI keeps as they are (so it sets no RawPath)
// and whose query, if any, is not empty and has no control characters.
func plainTarget(target string) (path, query string, ok bool) {
	if target == "" || target[0] != '/' {
		return "", "", false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	if hasQuery && query == "" {
		return "", "", false // ForceQuery
	}
	for i := 0; i < len(path); i++ {
		if !plainPathByte[path[i]] {
			return "", "", false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < 0x20 || c == 0x7f {
			return "", "", false
		}
	}
	return path, query, true
}

// plainPathByte marks the bytes url.URL keeps unescaped in a path:
// unreserved ones and the sub-delimiters it does not escape.
var plainPathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// header returns r's header fields with canonical keys, but for Host,
// whose first value it returns apart, and Transfer-Encoding, which
// net/http moves out of Header. The values of all fields share one
// backing array, vals's while there is room.
func header(r *httpcore.Request, rb *rebaser, vals []string) (hdr http.Header, host string) {
	var n int
	r.VisitHeaders(func(name, _ string) {
		if !isHostOrTE(name) {
			n++
		}
	})
	hdr = make(http.Header, n)
	hasHost := false
	r.VisitHeaders(func(name, value string) {
		if isHostOrTE(name) {
			if !hasHost && len(name) == len("Host") {
				host, hasHost = rb.str(value), true
			}
			return
		}
		key := http.CanonicalHeaderKey(rb.str(name))
		vals = append(vals, rb.str(value))
		i := len(vals) - 1
		if old, ok := hdr[key]; ok {
			hdr[key] = append(old, vals[i]) // old has no room: this copies
		} else {
			hdr[key] = vals[i : i+1 : i+1]
		}
	})
	return hdr, host
}

// isHostOrTE reports whether the field name (a token) is Host or
// Transfer-Encoding, in any case.
func isHostOrTE(name string) bool {
	switch len(name) {
	case len("Host"):
		return name == "Host" || lowerIs(name, "host")
	case len("Transfer-Encoding"):
		return name == "Transfer-Encoding" || lowerIs(name, "transfer-encoding")
	}
	return false
}

// lowerIs reports whether the token s is lower (lower case letters and
// '-') but for the case of its letters.
func lowerIs(s, lower string) bool {
	for i := 0; i < len(s); i++ {
		if s[i]|0x20 != lower[i] { // only 'X', 'x' and, for '-', CR (not in a token) match
			return false
		}
	}
	return true
}

// setFraming sets the body framing fields: Transfer-Encoding, left out of
// Header, is in TransferEncoding, and a chunked body's declared trailers are
// announced in Trailer, as net/http does.
func setFraming(req *http.Request, r *httpcore.Request) {
	switch {
	case r.Chunked():
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		req.Trailer = declaredTrailer(req.Header)
	case r.ContentLength() > 0:
		req.ContentLength = r.ContentLength()
	}
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

// forbiddenTrailer reports fields that must not be trailers (RFC 9110
// 6.5.1), as net/http refuses them.
func forbiddenTrailer(k string) bool {
	switch k {
	case "Content-Length", "Transfer-Encoding", "Trailer", "Host", "Connection", "Content-Type":
		return true
	}
	return false
}

// rebaser maps strings pointing into a raw head to the same bytes of a
// copy of it; other strings are copied.
type rebaser struct {
	raw  string
	head []byte
}

func (rb *rebaser) str(s string) string {
	if s == "" {
		return ""
	}
	off := uintptr(unsafe.Pointer(unsafe.StringData(s))) - uintptr(unsafe.Pointer(unsafe.SliceData(rb.head)))
	if off < uintptr(len(rb.head)) && off+uintptr(len(s)) <= uintptr(len(rb.head)) {
		return rb.raw[off : off+uintptr(len(s))]
	}
	return strings.Clone(s)
}

// body is the Body of an adapted request: the streamed body, with
// net/http's errors and trailers.
type body struct {
	b   *httpcore.Body
	req *http.Request
	eof bool
}

// Read reads the body as it arrives. At EOF the trailer fields of a chunked
// body are merged into the request's Trailer; a body over MaxBodyBytes
// fails with *http.MaxBytesError.
func (b *body) Read(p []byte) (int, error) {
	n, err := b.b.Read(p)
	var tooLarge *httpcore.BodyTooLargeError
	switch {
	case err == io.EOF && !b.eof:
		b.eof = true
		b.setTrailer()
	case errors.As(err, &tooLarge):
		err = &http.MaxBytesError{Limit: tooLarge.Limit}
	}
	return n, err
}

// Close stops reading; the rest of the body is dropped as it arrives.
func (b *body) Close() error { return b.b.Close() }

func (b *body) setReadDeadline(t time.Time) { b.b.SetReadDeadline(t) }

func (b *body) setTrailer() {
	b.b.VisitTrailers(func(name, value string) {
		if b.req.Trailer == nil {
			b.req.Trailer = make(http.Header)
		}
		k := http.CanonicalHeaderKey(name)
		b.req.Trailer[k] = append(b.req.Trailer[k], value)
	})
}
