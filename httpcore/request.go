package httpcore

import (
	"net/url"
	"strings"
)

// A Request is a parsed HTTP/1.1 request. Its strings and body point into
// the loop's buffers: they are valid only until ServeHTTP returns, even for a
// response finished later with ResponseWriter.Async and End. Copy
// (strings.Clone, bytes.Clone) whatever must live longer.
type Request struct {
	method, target, path, rawQuery, proto string
	host                                  string // see Host

	headers  []field
	trailers []field
	body     []byte

	contentLength int64 // -1 when absent
	minor         uint8
	flags         reqFlags
	c             *conn // nil outside a loop (tests, fuzzing)

	head   []byte    // the raw head, for handlers that stream bodies (serveStreaming)
	stream *bodyPipe // the body as it arrives, for those handlers; nil without a body
}

type field struct{ name, value string }

type reqFlags uint16

const (
	reqHost        reqFlags = 1 << iota // a Host field was seen
	reqClose                            // Connection: close
	reqKeepAlive                        // Connection: keep-alive
	reqTE                               // a Transfer-Encoding field was seen
	reqChunked                          // ... ending in chunked
	reqTEOther                          // ... with another coding
	reqExpect100                        // Expect: 100-continue
	reqExpectOther                      // any other expectation
)

// initialFields is the header slice capacity a reused Request starts with.
const initialFields = 32

func newRequest() *Request {
	return &Request{headers: make([]field, 0, initialFields)}
}

// reset forgets the previous request, keeping the field slices' capacity.
func (r *Request) reset() {
	clear(r.headers)
	clear(r.trailers)
	*r = Request{headers: r.headers[:0], trailers: r.trailers[:0], contentLength: -1}
}

// Method returns the request method, e.g. "GET".
func (r *Request) Method() string { return r.method }

// Target returns the raw request-target, e.g. "/echo?x=1".
func (r *Request) Target() string { return r.target }

// Path returns the path of the request-target: up to '?' for the usual
// origin form, the path after the authority for an absolute-form target
// ("/" if it has none), "*" for "OPTIONS *" and "" for CONNECT.
func (r *Request) Path() string { return r.path }

// Host returns the host [":" port] the request is for: the authority of
// an absolute-form target ("GET http://h/p") or of a CONNECT target, which
// RFC 9112 3.2.2 says takes precedence over the Host field, else the Host
// field value ("" when absent, as HTTP/1.0 allows). It is syntactically
// valid (RFC 3986 3.2.2) but not normalized: case and port are as sent.
func (r *Request) Host() string { return r.host }

// RawQuery returns the request-target after '?', without decoding.
func (r *Request) RawQuery() string { return r.rawQuery }

// Proto returns the protocol version as sent, e.g. "HTTP/1.1".
func (r *Request) Proto() string { return r.proto }

// ProtoMinor returns the minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
func (r *Request) ProtoMinor() int { return int(r.minor) }

// Header returns the first value of the named header field, ignoring case,
// or "" if it is absent.
func (r *Request) Header(name string) string { return lookup(r.headers, name) }

// VisitHeaders calls f for every header field in arrival order.
func (r *Request) VisitHeaders(f func(name, value string)) { visit(r.headers, f) }

// Trailer returns the first value of the named trailer field of a chunked
// body, or "".
func (r *Request) Trailer(name string) string { return lookup(r.trailers, name) }

// VisitTrailers calls f for every trailer field in arrival order.
func (r *Request) VisitTrailers(f func(name, value string)) { visit(r.trailers, f) }

// ContentLength returns the Content-Length of the request, or -1 for a
// chunked body or none.
func (r *Request) ContentLength() int64 { return r.contentLength }

// Body returns the whole request body, de-chunked. It is read before
// ServeHTTP is called.
func (r *Request) Body() []byte { return r.body }

// RemoteAddr returns the peer address as "ip:port" (over a Unix socket:
// the client's path, or "@" when it has none), or "" if it is unknown.
func (r *Request) RemoteAddr() string {
	if r.c == nil {
		return ""
	}
	if r.c.peer == "" {
		r.c.peer = peerAddr(r.c.fd) // once per connection: it cannot change
	}
	return r.c.peer
}

// Query returns the first value of the named query parameter, decoded, or ""
// if it is absent. Names and values without '%' or '+' are not copied.
func (r *Request) Query(name string) string {
	q := r.rawQuery
	for q != "" {
		var pair string
		pair, q, _ = strings.Cut(q, "&")
		k, v, _ := strings.Cut(pair, "=")
		if k == "" {
			continue
		}
		if k != name && (!needsUnescape(k) || unescape(k) != name) {
			continue
		}
		if !needsUnescape(v) {
			return v
		}
		if d, err := url.QueryUnescape(v); err == nil {
			return d
		}
	}
	return ""
}

func needsUnescape(s string) bool { return strings.ContainsAny(s, "%+") }

func unescape(s string) string {
	d, err := url.QueryUnescape(s)
	if err != nil {
		return ""
	}
	return d
}

func lookup(fields []field, name string) string {
	for i := range fields {
		if equalFold(fields[i].name, name) {
			return fields[i].value
		}
	}
	return ""
}

func visit(fields []field, f func(name, value string)) {
	for i := range fields {
		f(fields[i].name, fields[i].value)
	}
}

// keepAlive reports whether the client lets the connection persist after
// this request (RFC 9112 9.3).
func (r *Request) keepAlive() bool {
	if r.flags&reqClose != 0 {
		return false
	}
	return r.minor >= 1 || r.flags&reqKeepAlive != 0
}
