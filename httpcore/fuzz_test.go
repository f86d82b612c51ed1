package httpcore

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// parserSeeds seed the fuzz targets and the prefix test.
var parserSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /echo?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;e=1\r\nhello\r\n0\r\nT: v\r\n\r\n",
	"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nbody",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
	"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /async HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a/b?c HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.1\nHost: a\n\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
	"GET / HTTP/1.1\r\n\r\n",
	chromeRequest,
	"GET http://u@t.example:80/p?q HTTP/1.1\r\nHost: h\r\n\r\n",
	"CONNECT t.example:443 HTTP/1.1\r\nHost: t.example:443\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a = \"b\\\"c\"\r\nabc\r\n0\r\nT: 1\r\n\r\n",
	"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
}

// FuzzParseRequest checks the parser on arbitrary input: it never panics,
// what it accepts is well formed and agrees with net/http where that
// accepts it too, parsing allocates nothing, every prefix of an accepted
// head is incomplete, and a chunked body scans the same in pieces as whole.
func FuzzParseRequest(f *testing.F) {
	for _, s := range parserSeeds {
		f.Add([]byte(s), uint16(7))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint16) {
		lim := testLimits
		lim.maxHeader, lim.maxBody, lim.maxChunked = 512, 256, 1024
		r := newRequest()
		n, err := r.parseHead(in[:min(len(in), lim.maxHeader)], &lim)
		if err != nil {
			var pe *protoError
			if err != errIncomplete && !errors.As(err, &pe) {
				t.Fatalf("unexpected error type %T", err)
			}
			return
		}
		checkParsed(t, r, in[:n])
		compareNetHTTP(t, in, n, r, &lim)
		checkParseAllocs(t, in, &lim, split)
		if k := int(split) % n; k > 0 {
			if _, err := newRequest().parseHead(in[:k], &lim); err != errIncomplete {
				t.Fatalf("prefix %d of an accepted head: %v", k, err)
			}
		}
		if r.flags&reqChunked != 0 {
			checkChunkedSplit(t, in, n, int(split), &lim)
		}
	})
}

func checkParsed(t *testing.T, r *Request, head []byte) {
	if r.method == "" || !validName(r.method) {
		t.Fatalf("method %q", r.method)
	}
	if r.proto != "HTTP/1.0" && r.proto[:7] != "HTTP/1." {
		t.Fatalf("proto %q", r.proto)
	}
	for _, f := range r.headers {
		if !validName(f.name) || strings.ContainsAny(f.value, "\r\n\x00") || strings.Trim(f.value, " \t") != f.value {
			t.Fatalf("field %q: %q", f.name, f.value)
		}
	}
	if !bytes.HasSuffix(head, []byte("\r\n\r\n")) {
		t.Fatalf("head %q does not end with CRLF CRLF", head)
	}
	if r.flags&reqChunked != 0 && r.contentLength >= 0 {
		t.Fatalf("chunked with Content-Length")
	}
	checkTarget(t, r)
}

// checkTarget checks what the request-target parsed into.
func checkTarget(t *testing.T, r *Request) {
	switch {
	case r.method == "CONNECT":
		if r.path != "" || r.host != r.target || !validAuthority([]byte(r.host), true) {
			t.Fatalf("CONNECT %q: path %q host %q", r.target, r.path, r.host)
		}
	case r.target == "*":
		if r.method != "OPTIONS" || r.path != "*" {
			t.Fatalf("%s *: path %q", r.method, r.path)
		}
	case r.path == "" || r.path[0] != '/' || strings.ContainsAny(r.path, "?#"):
		t.Fatalf("target %q: path %q", r.target, r.path)
	case r.target[0] != '/' && (r.host == "" || strings.Contains(r.host, "@") || !strings.Contains(r.target, "//"+r.host)):
		t.Fatalf("absolute-form %q: host %q", r.target, r.host)
	case r.host != "" && !validAuthority([]byte(r.host), false):
		t.Fatalf("host %q", r.host)
	}
}

func checkChunkedSplit(t *testing.T, in []byte, headLen, split int, lim *limits) {
	var whole chunkScan
	wb := bytes.Clone(in)
	end, err := scanChunked(wb, headLen, &whole, lim)
	var parts chunkScan
	pb := bytes.Clone(in)
	cut := headLen + split%(len(in)-headLen+1)
	if _, perr := scanChunked(pb[:cut], headLen, &parts, lim); perr == nil || perr == errIncomplete {
		end2, err2 := scanChunked(pb, headLen, &parts, lim)
		if err2 != err || end2 != end {
			t.Fatalf("split at %d: (%d, %v), whole: (%d, %v)", cut, end2, err2, end, err)
		}
		if err == nil && !bytes.Equal(pb[:parts.data], wb[:whole.data]) {
			t.Fatalf("split at %d: body %q, whole: %q", cut, pb[headLen:parts.data], wb[headLen:whole.data])
		}
	} else if perr != err {
		t.Fatalf("split at %d: %v, whole: %v", cut, perr, err)
	}
	if err != nil {
		return
	}
	if int64(whole.data-headLen) != whole.dec.total {
		t.Fatalf("body of %d bytes, %d declared", whole.data-headLen, whole.dec.total)
	}
	r := newRequest()
	if e, err := r.parseFields(wb, whole.trailer(), lim, true); err != nil || e != end {
		t.Fatalf("trailers: end %d, %v; want %d", e, err, end)
	}
}

// FuzzConnSplit feeds a connection the same bytes whole and in random
// pieces, with a normal and a zero output high-water mark, and requires the
// same responses; the output must parse as one response per request served
// and at most a final refusal (checkConnOutput).
func FuzzConnSplit(f *testing.F) {
	for i, s := range parserSeeds {
		f.Add([]byte(s), uint64(i))
	}
	f.Fuzz(func(t *testing.T, in []byte, seed uint64) {
		if len(in) > 4096 {
			return
		}
		// A final CRLF CRLF lets a head that was refused only once it was
		// complete be refused in both runs.
		in = append(in, "\r\n\r\n"...)
		whole, methods := feedConn(t, [][]byte{in}, highWater)
		split, _ := feedConn(t, splitRandomly(in, seed), 0)
		if !bytes.Equal(whole, split) {
			t.Fatalf("whole:\n%q\nsplit:\n%q", whole, split)
		}
		checkConnOutput(t, whole, methods)
	})
}

func feedConn(t *testing.T, pieces [][]byte, hw int) ([]byte, []string) {
	h := newHarness(t, Config{MaxHeaderBytes: 1024, MaxBodyBytes: 1024}, nil)
	defer h.close()
	h.l.h = h.asyncHandler()
	h.l.highWater = hw
	for _, p := range pieces {
		h.feed(p)
		for h.endAsync() {
		}
		if cap(h.c.in) > h.l.lim.maxInput {
			t.Fatalf("input buffer of %d bytes, limit %d", cap(h.c.in), h.l.lim.maxInput)
		}
	}
	h.shutWrite()
	for h.endAsync() {
	}
	// 100 Continue depends on how the input was split.
	return bytes.ReplaceAll(h.out, []byte(continueResponse), nil), h.methods
}

func splitRandomly(in []byte, seed uint64) [][]byte {
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	var pieces [][]byte
	for len(in) > 0 {
		n := 1 + rng.IntN(min(len(in), 64))
		pieces = append(pieces, in[:n])
		in = in[n:]
	}
	return pieces
}
