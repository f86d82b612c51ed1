package httpcore

// Request-target forms (RFC 9112 3.2) and the authority syntax they share
// with the Host field (RFC 9110 7.2, RFC 3986 3.2.2-3.2.3).

// setTarget classifies the request-target and splits it into path and
// query. An absolute-form or authority-form target also sets the host the
// request is for, which takes precedence over the Host field (RFC 9112
// 3.2.2).
func (r *Request) setTarget(t []byte) error {
	r.target = bstr(t)
	path := t
	switch {
	case r.method == "CONNECT":
		if !validAuthority(t, true) { // authority-form: uri-host ":" port
			return errBadTarget
		}
		r.host = r.target
		return nil
	case t[0] == '/':
	case len(t) == 1 && t[0] == '*':
		if r.method != "OPTIONS" {
			return errBadTarget
		}
	default:
		host, p, ok := splitAbsolute(t)
		if !ok {
			return errBadTarget
		}
		r.host, path = bstr(host), p
	}
	r.setPath(path)
	return nil
}

// setPath splits an origin-form path (or the path of an absolute-form
// target, possibly empty) into path and query.
func (r *Request) setPath(path []byte) {
	for i, c := range path {
		if c == '?' {
			r.rawQuery = bstr(path[i+1:])
			path = path[:i]
			break
		}
	}
	r.path = bstr(path)
	if len(path) == 0 {
		r.path = "/"
	}
}

// splitAbsolute splits an absolute-form target "http" or "https" "://"
// authority path-abempty [ "?" query ] into its authority and the rest.
// Other schemes are refused: an origin server has no use for them. So is
// userinfo, which RFC 9110 4.2.4 says to treat as an error.
func splitAbsolute(t []byte) (host, rest []byte, ok bool) {
	i := 0
	switch {
	case len(t) > 7 && lowerEq(t[:7], "http://"):
		i = 7
	case len(t) > 8 && lowerEq(t[:8], "https://"):
		i = 8
	default:
		return nil, nil, false
	}
	end := i
	for end < len(t) && t[end] != '/' && t[end] != '?' {
		end++
	}
	if !validAuthority(t[i:end], false) {
		return nil, nil, false
	}
	return t[i:end], t[end:], true
}

// validAuthority reports whether b is uri-host [ ":" port ] with a host
// that is not empty; needPort requires the port.
func validAuthority(b []byte, needPort bool) bool {
	i := hostEnd(b)
	switch {
	case i <= 0:
		return false
	case i == len(b):
		return !needPort
	case b[i] != ':' || needPort && i+1 == len(b):
		return false
	}
	for _, c := range b[i+1:] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// hostEnd returns the length of the uri-host at the start of b: an
// IP-literal in brackets, or a reg-name of unreserved, sub-delims and
// pct-encoded characters (an IPv4 address is a reg-name too). It returns
// -1 for a malformed IP-literal or percent escape. Inside brackets any
// unreserved, sub-delims or ':' character is taken, which covers IPv6 and
// IPvFuture without checking their finer structure.
func hostEnd(b []byte) int {
	if len(b) > 0 && b[0] == '[' {
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == ']' && i > 1:
				return i + 1
			case c != ':' && !regNameTable[c]:
				return -1
			}
		}
		return -1
	}
	i := 0
	for i < len(b) {
		switch c := b[i]; {
		case regNameTable[c]:
			i++
		case c == '%':
			if i+2 >= len(b) || hexTable[b[i+1]] < 0 || hexTable[b[i+2]] < 0 {
				return -1
			}
			i += 3
		default:
			return i
		}
	}
	return i
}
