package httpcore

import "errors"

var (
	// ErrServerClosed is returned by Serve when Shutdown was called first.
	ErrServerClosed = errors.New("httpcore: server closed")
	// ErrServing is returned by Serve when the Server is already serving.
	ErrServing = errors.New("httpcore: server already serving")
	// ErrBodyNotAllowed is returned by ResponseWriter.Write when the status
	// (1xx, 204, 304) does not allow a body.
	ErrBodyNotAllowed = errors.New("httpcore: response status does not allow a body")
	// ErrResponseEnded is returned by ResponseWriter.Write after End.
	ErrResponseEnded = errors.New("httpcore: response already ended")
)

// errIncomplete reports that more input is needed; it never leaves the package.
var errIncomplete = errors.New("httpcore: incomplete request")

// A protoError is a request the engine refuses: it answers with status and
// closes the connection.
type protoError struct {
	status int
	msg    string
}

func (e *protoError) Error() string { return "httpcore: " + e.msg }

func badRequest(msg string) *protoError { return &protoError{400, msg} }

var (
	errBadMethod       = badRequest("invalid method")
	errBadTarget       = badRequest("invalid request target")
	errBadVersion      = badRequest("malformed HTTP version")
	errBadLineEnd      = badRequest("line not terminated by CRLF")
	errBadField        = badRequest("malformed header field")
	errObsFold         = badRequest("whitespace at start of header line")
	errMissingHost     = badRequest("missing Host header")
	errDupHost         = badRequest("repeated Host header")
	errBadHost         = badRequest("invalid Host header")
	errBadLength       = badRequest("invalid Content-Length")
	errDupLength       = badRequest("conflicting Content-Length")
	errLengthAndTE     = badRequest("both Transfer-Encoding and Content-Length")
	errBadTE           = badRequest("invalid Transfer-Encoding")
	errTEInHTTP10      = badRequest("Transfer-Encoding in an HTTP/1.0 request")
	errBadChunk        = badRequest("malformed chunked body")
	errChunkLine       = badRequest("chunk-size line too long")
	errVersion         = &protoError{505, "unsupported HTTP version"}
	errUnsupportedTE   = &protoError{501, "unsupported transfer coding"}
	errHeadTooLarge    = &protoError{431, "request head too large"}
	errTooManyFields   = &protoError{431, "too many header fields"}
	errTrailerTooLarge = &protoError{431, "request trailer too large"}
	errURITooLong      = &protoError{414, "request target too long"}
	errBodyTooLarge    = &protoError{413, "request body too large"}
	errExpectation     = &protoError{417, "unsupported expectation"}
	errTimeout         = &protoError{408, "request timeout"}
	errHandlerPanic    = &protoError{500, "handler panic"}
)
