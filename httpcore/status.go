package httpcore

import (
	"net/http"
	"strconv"
)

// StatusText returns the reason phrase for an HTTP status code, or "" if the
// code is unknown: net/http's.
func StatusText(code int) string { return http.StatusText(code) }

// statusLines holds "HTTP/1.1 <code> <reason>\r\n" for the codes 100 to
// 599, made once from StatusText. The server always answers with its own
// version, HTTP/1.1, also to HTTP/1.0 requests.
var statusLines = func() (lines [500]string) {
	for i := range lines {
		code := 100 + i
		lines[i] = "HTTP/1.1 " + strconv.Itoa(code) + " " + StatusText(code) + "\r\n"
	}
	return lines
}()

// appendStatusLine appends the status line for code, one of 100 to 999
// (WriteHeader's range).
func appendStatusLine(b []byte, code int) []byte {
	if code >= 100 && code < 600 {
		return append(b, statusLines[code-100]...)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, " \r\n"...)
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
