package httpcore

import "strconv"

// StatusText returns the reason phrase for an HTTP status code, or "" if the
// code is unknown.
func StatusText(code int) string {
	switch code {
	case 100:
		return "Continue"
	case 101:
		return "Switching Protocols"
	case 102:
		return "Processing"
	case 103:
		return "Early Hints"
	case 200:
		return "OK"
	case 201:
		return "Created"
	case 202:
		return "Accepted"
	case 203:
		return "Non-Authoritative Information"
	case 204:
		return "No Content"
	case 205:
		return "Reset Content"
	case 206:
		return "Partial Content"
	case 300:
		return "Multiple Choices"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 303:
		return "See Other"
	case 304:
		return "Not Modified"
	case 307:
		return "Temporary Redirect"
	case 308:
		return "Permanent Redirect"
	}
	return statusText4xx5xx(code)
}

func statusText4xx5xx(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 406:
		return "Not Acceptable"
	case 408:
		return "Request Timeout"
	case 409:
		return "Conflict"
	case 410:
		return "Gone"
	case 411:
		return "Length Required"
	case 412:
		return "Precondition Failed"
	case 413:
		return "Content Too Large"
	case 414:
		return "URI Too Long"
	case 415:
		return "Unsupported Media Type"
	case 416:
		return "Range Not Satisfiable"
	case 417:
		return "Expectation Failed"
	case 421:
		return "Misdirected Request"
	case 422:
		return "Unprocessable Content"
	case 426:
		return "Upgrade Required"
	case 428:
		return "Precondition Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 502:
		return "Bad Gateway"
	case 503:
		return "Service Unavailable"
	case 504:
		return "Gateway Timeout"
	case 505:
		return "HTTP Version Not Supported"
	}
	return ""
}

// appendStatusLine appends "HTTP/1.1 <code> <reason>\r\n". The server always
// answers with its own version, HTTP/1.1, also to HTTP/1.0 requests.
func appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, StatusText(code)...)
	return append(b, "\r\n"...)
}

// bodyAllowed reports whether a response with this status may have a body
// and a Content-Length (RFC 9110 6.4.1, 8.6).
func bodyAllowed(code int) bool {
	return code >= 200 && code != 204 && code != 304
}

// continueResponse is the interim response to Expect: 100-continue.
const continueResponse = "HTTP/1.1 100 Continue\r\n\r\n"

// appendErrorResponse appends the engine's own response for a refused
// request: a short text body and Connection: close.
func appendErrorResponse(b, date []byte, code int) []byte {
	text := StatusText(code)
	b = appendStatusLine(b, code)
	b = append(b, date...)
	b = append(b, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(text)+1), 10)
	b = append(b, "\r\nConnection: close\r\n\r\n"...)
	b = append(b, text...)
	return append(b, '\n')
}
