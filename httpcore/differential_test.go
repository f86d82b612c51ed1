package httpcore

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
)

// Oracles for FuzzParseRequest beyond "does not panic": the parser does not
// allocate, and where net/http also accepts a request the two agree on
// everything that decides where the request ends and what it means.

// checkParseAllocs requires parsing in (head, chunked body, trailers) to
// allocate nothing once a Request's field slices have room for the field
// limit: the parse path is zero-copy, so memory per input is bounded by
// design. While fuzzing it runs on a sample of inputs (AllocsPerRun stops
// the world); on the seed corpus, on every input.
func checkParseAllocs(t *testing.T, in []byte, lim *limits, sample uint16) {
	if fuzzWorker() && sample%16 != 0 {
		return
	}
	r := &Request{headers: make([]field, 0, lim.maxFields), trailers: make([]field, 0, lim.maxFields)}
	buf := make([]byte, len(in))
	var s chunkScan
	allocs := testing.AllocsPerRun(1, func() {
		copy(buf, in)
		parseWhole(r, buf, &s, lim)
	})
	if allocs > 0 {
		t.Fatalf("parsing %q allocates %v times", in, allocs)
	}
}

// parseWhole parses the request at the start of b as the loop does, in
// place.
func parseWhole(r *Request, b []byte, s *chunkScan, lim *limits) {
	n, err := r.parseHead(b[:min(len(b), lim.maxHeader)], lim)
	if err != nil || r.flags&reqChunked == 0 {
		return
	}
	*s = chunkScan{}
	end, err := scanChunked(b, n, s, lim)
	if err != nil {
		return
	}
	_, _ = r.parseFields(b[:end], s.trailer(), lim, true)
}

func fuzzWorker() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
}

// compareNetHTTP parses in with net/http's http.ReadRequest. If it accepts
// what the parser accepted (r, head of headLen bytes) they must agree on
// method, target, version, host, persistence and framing, and for a chunked
// body on its bytes and on where the message ends. A request only net/http
// refuses is fine: the parser is meant to be stricter.
func compareNetHTTP(t *testing.T, in []byte, headLen int, r *Request, lim *limits) {
	rd := bytes.NewReader(in)
	br := bufio.NewReader(rd)
	req, err := http.ReadRequest(br)
	if err != nil {
		return
	}
	defer req.Body.Close()
	switch {
	case req.Method != r.method || req.RequestURI != r.target || req.Proto != r.proto:
		t.Fatalf("net/http: %s %s %s, parser: %s %s %s", req.Method, req.RequestURI, req.Proto, r.method, r.target, r.proto)
	case req.Host != r.host && !strings.Contains(r.host, "%"): // net/http decodes %XX in a URL's host
		t.Fatalf("net/http: Host %q, parser %q", req.Host, r.host)
	case req.Close == r.keepAlive():
		t.Fatalf("net/http: Close %v, parser keep-alive %v", req.Close, r.keepAlive())
	}
	chunked := len(req.TransferEncoding) == 1 && req.TransferEncoding[0] == "chunked"
	if chunked != (r.flags&reqChunked != 0) || !chunked && req.ContentLength != max(r.contentLength, 0) {
		t.Fatalf("net/http: length %d chunked %v, parser: length %d chunked %v",
			req.ContentLength, chunked, r.contentLength, r.flags&reqChunked != 0)
	}
	if chunked {
		compareNetHTTPChunked(t, in, headLen, req.Body, func() int { return len(in) - rd.Len() - br.Buffered() }, lim)
	}
}

// compareNetHTTPChunked requires a chunked body both sides accept to have the same
// bytes and end at the same offset.
func compareNetHTTPChunked(t *testing.T, in []byte, headLen int, body io.Reader, consumed func() int, lim *limits) {
	var s chunkScan
	b := bytes.Clone(in) // decoded in place
	end, err := scanChunked(b, headLen, &s, lim)
	if err != nil {
		return
	}
	theirs, err := io.ReadAll(body)
	if err != nil {
		return
	}
	if ours := b[headLen:s.data]; !bytes.Equal(ours, theirs) || consumed() != end {
		t.Fatalf("chunked body: net/http %q ending at %d, parser %q ending at %d", theirs, consumed(), ours, end)
	}
}
