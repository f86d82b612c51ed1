package httpcore

import "bytes"

// The parser reads a request head (RFC 9112 section 2-5) in place: every
// string it stores in the Request points into the input. It is strict: a
// byte that cannot start or continue the element being read is an error
// right there, so a prefix of a valid head is always incomplete and never an
// error, and an invalid head gives the same error however it was split.
//
// Where the RFCs let a recipient choose, it chooses to refuse (400 unless
// noted): a bare LF or bare CR as a line end; obs-fold and whitespace
// before the first field; whitespace between a field name and its colon;
// any CTL but HTAB in a field value; a missing (HTTP/1.1) or repeated Host
// or one that is not uri-host [":" port]; userinfo or a scheme other than
// http/https in an absolute-form target; a Content-Length that is not
// 1*DIGIT, or a repeated or listed one whose values differ (identical
// ones are taken, RFC 9112 6.3); Transfer-Encoding with Content-Length, in
// HTTP/1.0, or not ending in chunked; codings before chunked get 501 as we
// do not decode them. HTTP/1.x with x > 1 is served as HTTP/1.1; another
// major version gets 505. Over the limits: 414 while the target is read,
// else 431; 413 for a Content-Length above MaxBodyBytes, or one that would
// overflow, at once, without reading the body.

// versionPattern is the shape of "HTTP/1.1\r\n"; 'd' stands for a digit.
const versionPattern = "HTTP/d.d\r\n"

// parseHead parses the head at the start of b into r and returns its length,
// errIncomplete when b ends inside it, or a *protoError.
func (r *Request) parseHead(b []byte, lim *limits) (int, error) {
	r.reset()
	i := 0
	// RFC 9112 2.2: ignore empty lines before the request-line.
	for i < len(b) && b[i] == '\r' {
		if i+1 == len(b) {
			return 0, errIncomplete
		}
		if b[i+1] != '\n' {
			return 0, errBadLineEnd
		}
		i += 2
	}
	i, err := r.parseRequestLine(b, i)
	if err != nil {
		return 0, err
	}
	if i, err = r.parseFields(b, i, lim, false); err != nil {
		return 0, err
	}
	return i, r.checkHead()
}

// parseRequestLine parses method SP request-target SP HTTP-version CRLF.
func (r *Request) parseRequestLine(b []byte, i int) (int, error) {
	start := i
	for i < len(b) && tokenTable[b[i]] {
		i++
	}
	switch {
	case i-start > maxMethodLen:
		return 0, errBadMethod
	case i == len(b):
		return 0, errIncomplete
	case b[i] != ' ' || i == start:
		return 0, errBadMethod
	}
	r.method = bstr(b[start:i])
	i++
	start = i
	for i < len(b) && targetTable[b[i]] {
		i++
	}
	switch {
	case i == len(b):
		return 0, errIncomplete
	case b[i] != ' ' || i == start:
		return 0, errBadTarget
	}
	if err := r.setTarget(b[start:i]); err != nil {
		return 0, err
	}
	i++
	if err := r.setVersion(b[i:]); err != nil {
		return 0, err
	}
	return i + len(versionPattern), nil
}

// setVersion checks "HTTP/" DIGIT "." DIGIT CRLF at the start of v. Only
// major version 1 is served (505 otherwise); minor versions above 1 are
// treated as 1.1.
func (r *Request) setVersion(v []byte) error {
	for i := 0; i < len(versionPattern); i++ {
		if i == len(v) {
			return errIncomplete
		}
		want := versionPattern[i]
		switch {
		case want == 'd' && isDigit(v[i]), want == v[i]:
			continue
		case i >= len("HTTP/d.d"):
			return errBadLineEnd
		default:
			return errBadVersion
		}
	}
	if v[5] != '1' {
		return errVersion
	}
	r.minor = v[7] - '0'
	r.proto = bstr(v[:len("HTTP/d.d")])
	return nil
}

// parseFields parses field lines from b[i:] through the empty line that ends
// them, into r.headers or, for a chunked trailer section, r.trailers.
func (r *Request) parseFields(b []byte, i int, lim *limits, trailer bool) (int, error) {
	for {
		if end, err := fieldsEnd(b, i); end != 0 || err != nil {
			return end, err
		}
		name, value, next, err := parseField(b, i)
		if err != nil {
			return 0, err
		}
		if err := r.addField(name, value, lim, trailer); err != nil {
			return 0, err
		}
		i = next
	}
}

// fieldsEnd looks at the line starting at b[i]: it returns the offset just
// past it if it is the empty line (CRLF) that ends a field section, 0 if a
// field line starts there, or the error that line already shows: a bare
// LF, or leading whitespace (obs-fold, or whitespace after the start-line).
func fieldsEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errIncomplete
	}
	switch b[i] {
	case '\r':
		if i+1 == len(b) {
			return 0, errIncomplete
		}
		if b[i+1] != '\n' {
			return 0, errBadLineEnd
		}
		return i + 2, nil
	case '\n':
		return 0, errBadLineEnd
	case ' ', '\t':
		return 0, errObsFold
	}
	return 0, nil
}

// parseField parses one field-line: token ":" OWS field-value OWS CRLF.
func parseField(b []byte, i int) (name, value []byte, next int, err error) {
	start := i
	for i < len(b) && tokenTable[b[i]] {
		i++
	}
	switch {
	case i == len(b):
		return nil, nil, 0, errIncomplete
	case b[i] != ':' || i == start:
		return nil, nil, 0, errBadField
	}
	name = b[start:i]
	i++
	start = i
	for i < len(b) && valueTable[b[i]] {
		i++
	}
	switch {
	case i+1 >= len(b) && (i == len(b) || b[i] == '\r'):
		return nil, nil, 0, errIncomplete
	case b[i] == '\n' || b[i] == '\r' && b[i+1] != '\n':
		return nil, nil, 0, errBadLineEnd
	case b[i] != '\r':
		return nil, nil, 0, errBadField // a CTL or NUL in the value
	}
	return name, trimOWS(b[start:i]), i + 2, nil
}

// addField stores a field and, for a header, notes what it means for framing
// and the connection.
func (r *Request) addField(name, value []byte, lim *limits, trailer bool) error {
	f := field{name: bstr(name), value: bstr(value)}
	if trailer {
		if len(r.trailers) >= lim.maxFields {
			return errTooManyFields
		}
		r.trailers = append(r.trailers, f)
		return nil
	}
	if len(r.headers) >= lim.maxFields {
		return errTooManyFields
	}
	r.headers = append(r.headers, f)
	switch len(name) {
	case 4:
		if lowerEq(name, "host") {
			return r.noteHost(value)
		}
	case 6:
		if lowerEq(name, "expect") {
			r.noteExpect(value)
		}
	case 10:
		if lowerEq(name, "connection") {
			r.noteConnection(value)
		}
	case 14:
		if lowerEq(name, "content-length") {
			return r.noteLength(value)
		}
	case 17:
		if lowerEq(name, "transfer-encoding") {
			return r.noteTransferEncoding(value)
		}
	}
	return nil
}

// noteHost checks Host = uri-host [ ":" port ], possibly empty (RFC 9110
// 7.2), and that it comes once (RFC 9112 3.2). The Host field names the
// request's host unless the request-target already did.
func (r *Request) noteHost(v []byte) error {
	if r.flags&reqHost != 0 {
		return errDupHost
	}
	r.flags |= reqHost
	if len(v) > 0 && !validAuthority(v, false) {
		return errBadHost
	}
	if r.host == "" {
		r.host = bstr(v)
	}
	return nil
}

func (r *Request) noteExpect(v []byte) {
	switch {
	case lowerEq(v, "100-continue"):
		r.flags |= reqExpect100
	case len(v) > 0:
		r.flags |= reqExpectOther
	}
}

func (r *Request) noteConnection(v []byte) {
	for len(v) > 0 {
		var item []byte
		item, v = nextItem(v)
		switch {
		case lowerEq(item, "close"):
			r.flags |= reqClose
		case lowerEq(item, "keep-alive"):
			r.flags |= reqKeepAlive
		}
	}
}

// noteLength reads Content-Length = 1*DIGIT. A repeated field, or a list
// ("5, 5"), is taken only if all its values are valid and the same (RFC
// 9112 6.3 item 5): a sign, inner whitespace, an empty element or a
// differing value is refused.
func (r *Request) noteLength(v []byte) error {
	for {
		item, rest, more := v, v[:0], false
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, rest, more = v[:i], v[i+1:], true
		}
		n, err := parseLength(trimOWS(item))
		if err != nil {
			return err
		}
		if r.contentLength >= 0 && r.contentLength != n {
			return errDupLength
		}
		r.contentLength = n
		if !more {
			return nil
		}
		v = rest
	}
}

// parseLength parses 1*DIGIT. A value too large for any body is refused
// with 413 before it could overflow.
func parseLength(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, errBadLength
	}
	var n int64
	for _, c := range v {
		if !isDigit(c) {
			return 0, errBadLength
		}
		if n > (1<<62)/10 {
			return 0, errBodyTooLarge
		}
		n = n*10 + int64(c-'0')
	}
	return n, nil
}

// noteTransferEncoding reads a transfer-coding list. chunked must be the
// final coding and appear once (RFC 9112 6.1); checkHead refuses the rest:
// a list that does not end in chunked with 400 (RFC 9112 6.3 item 4: the
// body length cannot be known), one with other codings before chunked
// with 501 (RFC 9112 6.1: codings the server does not decode).
func (r *Request) noteTransferEncoding(v []byte) error {
	r.flags |= reqTE
	seen := false
	for len(v) > 0 {
		var item []byte
		item, v = nextItem(v)
		if len(item) == 0 {
			continue
		}
		seen = true
		if r.flags&reqChunked != 0 {
			return errBadTE // a coding after chunked, or chunked twice
		}
		if lowerEq(item, "chunked") {
			r.flags |= reqChunked
			continue
		}
		if !validCoding(item) {
			return errBadTE
		}
		r.flags |= reqTEOther
	}
	if !seen {
		return errBadTE
	}
	return nil
}

// validCoding reports token *( OWS ";" OWS transfer-parameter ), loosely:
// a token followed by anything that may appear in parameters.
func validCoding(item []byte) bool {
	if !tokenTable[item[0]] {
		return false
	}
	for _, c := range item {
		if !tokenTable[c] && !contains(" \t;=\"", c) {
			return false
		}
	}
	return true
}

// checkHead applies the rules that need the whole head.
func (r *Request) checkHead() error {
	if r.minor >= 1 && r.flags&reqHost == 0 {
		return errMissingHost
	}
	if r.flags&reqTE != 0 {
		switch {
		case r.minor == 0:
			return errTEInHTTP10
		case r.contentLength >= 0:
			return errLengthAndTE
		case r.flags&reqChunked == 0:
			return errBadTE
		case r.flags&reqTEOther != 0:
			return errUnsupportedTE
		}
	}
	if r.minor == 0 {
		r.flags &^= reqExpect100 | reqExpectOther // RFC 9110 10.1.1
	}
	return nil
}

// headMayEnd reports whether a head whose first scanned bytes held no end
// may now be complete or invalid: b[from-3:] holds CRLF CRLF or a bare LF.
// It lets a trickled head be scanned once instead of parsed on every read.
func headMayEnd(b []byte, from int) bool {
	for i := max(from-3, 0); i < len(b); i++ {
		if b[i] != '\n' {
			continue
		}
		if i == 0 || b[i-1] != '\r' {
			return true
		}
		if i >= 3 && b[i-2] == '\n' && b[i-3] == '\r' {
			return true
		}
	}
	return false
}

// limitError is the error for a head that is still incomplete at the
// MaxHeaderBytes limit: 414 while the request-target is being read, 431
// after it.
func limitError(b []byte) error {
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:] // empty lines before the request-line
	}
	// Still in the request-target: an unfinished request-line with one
	// space, after the method.
	if bytes.IndexByte(b, '\n') < 0 && bytes.Count(b, []byte{' '}) == 1 {
		return errURITooLong
	}
	return errHeadTooLarge
}
