package httpcore

import "unsafe"

// Byte classes from RFC 9110 and RFC 3986, as lookup tables.
var (
	tokenTable   = byteTable(isTokenChar)
	valueTable   = byteTable(isValueChar)
	targetTable  = byteTable(isTargetChar)
	regNameTable = byteTable(isRegNameChar)
	qdtextTable  = byteTable(isQdtext)
	hexTable     = hexValues()
)

func byteTable(pred func(c byte) bool) (t [256]bool) {
	for i := range t {
		t[i] = pred(byte(i))
	}
	return t
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// isTokenChar reports tchar (RFC 9110 5.6.2).
func isTokenChar(c byte) bool {
	return isAlnum(c) || c != 0 && c < 0x80 && contains("!#$%&'*+-.^_`|~", c)
}

// isValueChar reports field-vchar, SP and HTAB: no CTLs, DEL, CR, LF or NUL.
func isValueChar(c byte) bool { return c == '\t' || c >= 0x20 && c != 0x7f }

// isTargetChar reports the visible ASCII a request-target may hold; '#' (a
// fragment) and anything non-ASCII are refused.
func isTargetChar(c byte) bool { return c > 0x20 && c < 0x7f && c != '#' }

// isRegNameChar reports unreserved and sub-delims (RFC 3986 2.2-2.3), the
// characters of a reg-name apart from percent escapes.
func isRegNameChar(c byte) bool { return isAlnum(c) || contains("-._~!$&'()*+,;=", c) }

// isQdtext reports qdtext (RFC 9110 5.6.4): a quoted-string character
// other than DQUOTE and backslash.
func isQdtext(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || 0x23 <= c && c <= 0x5b || 0x5d <= c && c != 0x7f
}

// isQuotedPairChar reports what may follow a backslash in a quoted-string.
func isQuotedPairChar(c byte) bool { return c == '\t' || c >= 0x20 && c != 0x7f }

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}

func hexValues() (t [256]int8) {
	for i := range t {
		c := byte(i)
		switch {
		case '0' <= c && c <= '9':
			t[i] = int8(c - '0')
		case 'a' <= c && c <= 'f':
			t[i] = int8(c - 'a' + 10)
		case 'A' <= c && c <= 'F':
			t[i] = int8(c - 'A' + 10)
		default:
			t[i] = -1
		}
	}
	return t
}

// bstr returns b as a string without copying; b must not change while the
// string is in use.
func bstr(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// lowerEq reports whether b equals lower (all lower case) ignoring ASCII case.
func lowerEq(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// equalFold reports whether a and b are equal ignoring ASCII case.
func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// trimOWS trims optional whitespace (SP, HTAB) from both ends of b.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextItem splits the first element off a comma-separated list (RFC 9110
// 5.6.1), trimming OWS; empty elements come back empty.
func nextItem(list []byte) (item, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}
