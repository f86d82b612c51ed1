package httpcore

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

var testLimits = newLimits(Config{}.withDefaults())

func TestParseHead(t *testing.T) {
	tests := []struct {
		in   string
		err  error // nil, errIncomplete or a *protoError
		want string
	}{
		{in: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=a"},
		{in: "GET /p/a?x=1&y HTTP/1.1\r\nHost: a\r\n\r\n", want: "GET /p/a?x=1&y HTTP/1.1 path=/p/a q=x=1&y host=a"},
		{in: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", want: "OPTIONS * HTTP/1.1 path=* q= host=a"},
		{in: "CONNECT a.b:443 HTTP/1.1\r\nHost: a.b:443\r\n\r\n", want: "CONNECT a.b:443 HTTP/1.1 path= q= host=a.b:443"},
		{in: "GET https://a.b:8/x?y HTTP/1.1\r\nHost: a.b\r\n\r\n", want: "GET https://a.b:8/x?y HTTP/1.1 path=/x q=y host=a.b"},
		{in: "GET http://a.b HTTP/1.1\r\nHost: a.b\r\n\r\n", want: "GET http://a.b HTTP/1.1 path=/ q= host=a.b"},
		{in: "GET HTTP://t.example:81?q HTTP/1.1\r\nHost: other\r\n\r\n", want: "GET HTTP://t.example:81?q HTTP/1.1 path=/ q=q host=other"},
		{in: "GET / HTTP/1.0\r\n\r\n", want: "GET / HTTP/1.0 path=/ q= host="},
		{in: "GET / HTTP/1.1\r\nHost:\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host="},
		{in: "GET / HTTP/1.1\r\nHost: \t a \t\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=a"},
		{in: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=a"},
		{in: "GET / HTTP/1.9\r\nHost: a\r\n\r\n", want: "GET / HTTP/1.9 path=/ q= host=a"},
		{in: "M-SEARCH * HTTP/1.1\r\nHost: a\r\n\r\n", err: errBadTarget},

		{in: "", err: errIncomplete},
		{in: "\r", err: errIncomplete},
		{in: "GET", err: errIncomplete},
		{in: "GET / HTTP/1.", err: errIncomplete},
		{in: "GET / HTTP/1.1\r", err: errIncomplete},
		{in: "GET / HTTP/1.1\r\nHost: a\r\n", err: errIncomplete},
		{in: "GET / HTTP/1.1\r\nHost: a\r\n\r", err: errIncomplete},

		{in: " GET / HTTP/1.1\r\n\r\n", err: errBadMethod},
		{in: "GET  / HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET / HTTP/1.1 \r\n\r\n", err: errBadLineEnd},
		{in: "G(T / HTTP/1.1\r\n\r\n", err: errBadMethod},
		{in: strings.Repeat("G", 33) + " / HTTP/1.1\r\n\r\n", err: errBadMethod},
		{in: "GET /a#b HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET /\x80 HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET a HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET * HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET http:/a HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "CONNECT /x HTTP/1.1\r\n\r\n", err: errBadTarget},
		{in: "GET / http/1.1\r\n\r\n", err: errBadVersion},
		{in: "GET / HTTP/1.10\r\n\r\n", err: errBadLineEnd},
		{in: "GET / HTTP/11\r\n\r\n", err: errBadVersion},
		{in: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", err: errVersion},
		{in: "GET / HTTP/0.9\r\n\r\n", err: errVersion},
		{in: "GET / HTTP/1.1\nHost: a\n\n", err: errBadLineEnd},
		{in: "GET / HTTP/1.1\r\nHost: a\n\r\n", err: errBadLineEnd},
		{in: "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", err: errBadLineEnd},
		{in: "GET / HTTP/1.1\r\nHost: a\r\n\n", err: errBadLineEnd},
		{in: "GET / HTTP/1.1\r\n Host: a\r\n\r\n", err: errObsFold},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n\t2\r\n\r\n", err: errObsFold},
		{in: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\n: a\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\nX\x00: a\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\nX: a\x00\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", err: errBadField},
		{in: "GET / HTTP/1.1\r\n\r\n", err: errMissingHost},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", err: errDupHost},
		{in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: []\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", err: errBadHost},
		{in: "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=[::1]:8080"},
		{in: "GET / HTTP/1.1\r\nHost: a%2Db.c:\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=a%2Db.c:"},
		{in: "GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", err: errBadTarget},
		{in: "GET http://:80/ HTTP/1.1\r\nHost: a\r\n\r\n", err: errBadTarget},
		{in: "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", err: errBadTarget},
		{in: "GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", err: errBadTarget},
		{in: "CONNECT a.b HTTP/1.1\r\nHost: a.b\r\n\r\n", err: errBadTarget},
		{in: "CONNECT a.b: HTTP/1.1\r\nHost: a.b\r\n\r\n", err: errBadTarget},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 1\r\n\r\n", want: "GET / HTTP/1.1 path=/ q= host=a"},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1, 2\r\n\r\n", err: errDupLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1,\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: ,1\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 1\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1, 2\r\n\r\n", err: errDupLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", err: errBadLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", err: errDupLength},
		{in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", err: errBodyTooLarge},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", err: errLengthAndTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", err: errLengthAndTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", err: errBadTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", err: errBadTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", err: errBadTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n", err: errBadTE},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x01\r\n\r\n", err: errBadField},
		{in: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: errUnsupportedTE},
		{in: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", err: errTEInHTTP10},
		{in: "GET / HTTP/1.1\r\nHost: a\r\n" + strings.Repeat("X: y\r\n", 100) + "\r\n", err: errTooManyFields},
	}
	for _, tt := range tests {
		r := newRequest()
		n, err := r.parseHead([]byte(tt.in), &testLimits)
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: error %v, want %v", tt.in, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if n != len(tt.in) {
			t.Errorf("%q: length %d, want %d", tt.in, n, len(tt.in))
		}
		got := fmt.Sprintf("%s %s %s path=%s q=%s host=%s", r.Method(), r.Target(), r.Proto(), r.Path(), r.RawQuery(), r.Header("HOST"))
		if got != tt.want {
			t.Errorf("%q:\n got %s\nwant %s", tt.in, got, tt.want)
		}
	}
}

// TestRequestHost checks that an absolute-form or CONNECT target names the
// host over the Host field (RFC 9112 3.2.2) and that Path is the path part.
func TestRequestHost(t *testing.T) {
	tests := []struct{ in, host, path string }{
		{"GET /x HTTP/1.1\r\nHost: h.example:8080\r\n\r\n", "h.example:8080", "/x"},
		{"GET http://t.example/p?q HTTP/1.1\r\nHost: h.example\r\n\r\n", "t.example", "/p"},
		{"GET https://[::1]:443 HTTP/1.1\r\nHost:\r\n\r\n", "[::1]:443", "/"},
		{"CONNECT t.example:443 HTTP/1.1\r\nHost: h\r\n\r\n", "t.example:443", ""},
		{"GET / HTTP/1.0\r\n\r\n", "", "/"},
		{"GET / HTTP/1.1\r\nHost:\r\n\r\n", "", "/"},
	}
	for _, tt := range tests {
		r := newRequest()
		if _, err := r.parseHead([]byte(tt.in), &testLimits); err != nil {
			t.Errorf("%q: %v", tt.in, err)
			continue
		}
		if r.Host() != tt.host || r.Path() != tt.path {
			t.Errorf("%q: Host %q Path %q, want %q %q", tt.in, r.Host(), r.Path(), tt.host, tt.path)
		}
	}
}

func TestParseHeadSemantics(t *testing.T) {
	r := newRequest()
	in := "POST /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Close\r\nExpect: 100-Continue\r\n" +
		"transfer-encoding: Chunked\r\nX-A: 1\r\nx-a: 2\r\n\r\n"
	if _, err := r.parseHead([]byte(in), &testLimits); err != nil {
		t.Fatal(err)
	}
	if r.keepAlive() || r.flags&reqExpect100 == 0 || r.flags&reqChunked == 0 || r.ContentLength() != -1 {
		t.Fatalf("flags %b", r.flags)
	}
	if got := r.Header("x-A"); got != "1" {
		t.Fatalf("first X-A = %q", got)
	}
	var names []string
	r.VisitHeaders(func(name, value string) { names = append(names, name+"="+value) })
	if got := strings.Join(names, ","); got != "Host=a,Connection=keep-alive, Close,Expect=100-Continue,transfer-encoding=Chunked,X-A=1,x-a=2" {
		t.Fatalf("headers %s", got)
	}
	if _, err := r.parseHead([]byte("GET / HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\n\r\n"), &testLimits); err != nil {
		t.Fatal(err)
	}
	if !r.keepAlive() || r.flags&reqExpect100 != 0 {
		t.Fatalf("HTTP/1.0 keep-alive: flags %b", r.flags)
	}
}

// TestParseHeadPrefixes checks that every prefix of a valid head is
// incomplete, never an error: the property that makes split reads safe.
func TestParseHeadPrefixes(t *testing.T) {
	for _, s := range parserSeeds {
		r := newRequest()
		n, err := r.parseHead([]byte(s), &testLimits)
		if err != nil {
			continue
		}
		for i := range n {
			if _, err := r.parseHead([]byte(s[:i]), &testLimits); err != errIncomplete {
				t.Errorf("%q: prefix %d: %v", s, i, err)
			}
		}
	}
}

func TestHeadMayEnd(t *testing.T) {
	tests := []struct {
		in   string
		from int
		want bool
	}{
		{"GET / HTTP/1.1\r\nHost: a\r\n", 0, false},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 0, true},
		{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", 26, true}, // end straddles the scanned part
		{"GET / HTTP/1.1\nHost", 0, true},               // bare LF: let the parser refuse it
		{"\r\n", 0, false},
	}
	for _, tt := range tests {
		if got := headMayEnd([]byte(tt.in), tt.from); got != tt.want {
			t.Errorf("headMayEnd(%q, %d) = %v", tt.in, tt.from, got)
		}
	}
}

func TestLimitError(t *testing.T) {
	if err := limitError([]byte("GET /aaaa")); err != errURITooLong {
		t.Errorf("long target: %v", err)
	}
	if err := limitError([]byte("\r\n\r\nGET /aaaa")); err != errURITooLong {
		t.Errorf("long target after empty lines: %v", err)
	}
	if err := limitError([]byte("GET / HTTP/1.1\r\nX: aaa")); err != errHeadTooLarge {
		t.Errorf("long field: %v", err)
	}
}

func TestChunked(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	tests := []struct {
		body     string
		err      error
		want     string
		trailers string
	}{
		{body: "0\r\n\r\n", want: ""},
		{body: "5\r\nhello\r\n0\r\n\r\n", want: "hello"},
		{body: "5\r\nhello\r\n1;a=b ; c=\"d e\"\r\n!\r\n0\r\n\r\n", want: "hello!"},
		{body: "00000A\r\n0123456789\r\n0\r\n\r\n", want: "0123456789"},
		{body: "3\r\nabc\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n", want: "abc", trailers: "X-A=1,X-B=2"},
		{body: "3\r\nabc\r\n", err: errIncomplete},
		{body: "3\r\nab", err: errIncomplete},
		{body: "3\r\nabc\r\n0\r\nX: 1\r\n", err: errIncomplete},
		{body: "3\r\nabcX\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3\r\nabc\n0\r\n\r\n", err: errBadChunk},
		{body: "x\r\n", err: errBadChunk},
		{body: "\r\n", err: errBadChunk},
		{body: " 3\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3 x\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;a\x01\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3 ;a = b ;c= \"q\\\"\\\\\"\r\nabc\r\n0;last\r\n\r\n", want: "abc"}, // BWS around ; and =
		{body: "3;a;b=c;d=\"\"\r\nabc\r\n0\r\n\r\n", want: "abc"},
		{body: "3 \r\nabc\r\n0\r\n\r\n", err: errBadChunk}, // whitespace without an extension
		{body: "3\t\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;a \r\nabc\r\n0\r\n\r\n", err: errBadChunk}, // BWS not followed by = or ;
		{body: "3;=b\r\nabc\r\n0\r\n\r\n", err: errBadChunk}, // no name
		{body: "3;a=\r\nabc\r\n0\r\n\r\n", err: errBadChunk}, // no value
		{body: "3;a b\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;a=b c\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;a=\"b\r\nabc\r\n0\r\n\r\n", err: errBadChunk}, // unterminated quoted-string
		{body: "3;a=\"b\"c\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;a=b\x00\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3;;\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "+3\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3\r\nabc\r\n0 \r\n\r\n", err: errBadChunk},
		{body: "3\r\nabc\r\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3\r\nabc0\r\n\r\n", err: errBadChunk}, // data longer than the size
		{body: "3;" + strings.Repeat("a", maxChunkLine-3) + "\r\nabc\r\n0\r\n\r\n", want: "abc"},
		{body: "0000000000000000000000000003\r\nabc\r\n0\r\n\r\n", want: "abc"},
		{body: "3\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "3\rabc\r\n0\r\n\r\n", err: errBadLineEnd},
		{body: "-3\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "0x3\r\nabc\r\n0\r\n\r\n", err: errBadChunk},
		{body: "fffffffffffffffffffff\r\n", err: errBodyTooLarge},
		{body: "100001\r\n", err: errBodyTooLarge},
		{body: "3;" + strings.Repeat("a", maxChunkLine) + "\r\n", err: errChunkLine},
		{body: "3;" + strings.Repeat("a", maxChunkLine), err: errChunkLine},
		{body: "0\r\n X: 1\r\n\r\n", err: errObsFold},
		{body: "0\r\nX 1\r\n\r\n", err: errBadField},
		{body: "0\r\nX: " + strings.Repeat("a", 17<<10), err: errTrailerTooLarge},
		{body: "0\r\n" + strings.Repeat("X: 1\r\n", 101) + "\r\n", err: errTooManyFields},
	}
	for _, tt := range tests {
		in := []byte(head + tt.body + "GET")
		in = in[:len(in)-3] // room past the end must not be read
		var s chunkScan
		end, err := scanChunked(in, len(head), &s, &testLimits)
		if !errors.Is(err, tt.err) {
			t.Errorf("%q: error %v, want %v", tt.body, err, tt.err)
			continue
		}
		if err != nil {
			continue
		}
		if end != len(in) {
			t.Errorf("%q: end %d, want %d", tt.body, end, len(in))
		}
		r := newRequest()
		if _, err := r.parseFields(in, s.trailer(), &testLimits, true); err != nil {
			t.Errorf("%q: trailers: %v", tt.body, err)
		}
		var tr []string
		r.VisitTrailers(func(name, value string) { tr = append(tr, name+"="+value) })
		if got := string(in[len(head):s.data]); got != tt.want || strings.Join(tr, ",") != tt.trailers {
			t.Errorf("%q: body %q trailers %v", tt.body, got, tr)
		}
	}
}

// TestChunkedResume checks that scanning a chunked body one byte at a time
// gives the same result as scanning it whole.
func TestChunkedResume(t *testing.T) {
	const head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	in := head + "5\r\nhello\r\n1a;x=y\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nA: b\r\n\r\n"
	b := []byte(in)
	var s chunkScan
	for i := len(head); i < len(in); i++ {
		if _, err := scanChunked(b[:i], len(head), &s, &testLimits); err != errIncomplete {
			t.Fatalf("prefix %d: %v", i, err)
		}
	}
	end, err := scanChunked(b, len(head), &s, &testLimits)
	if body := string(b[len(head):s.data]); err != nil || end != len(in) || body != "helloabcdefghijklmnopqrstuvwxyz" {
		t.Fatalf("end %d err %v body %q", end, err, body)
	}
}

func TestQuery(t *testing.T) {
	r := newRequest()
	in := "GET /?a=1&b=x%20y&c=p+q&a=2&&d&e=%zz&%66=g&h= HTTP/1.1\r\nHost: a\r\n\r\n"
	if _, err := r.parseHead([]byte(in), &testLimits); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"a": "1", "b": "x y", "c": "p q", "d": "", "e": "", "f": "g", "h": "", "zz": ""} {
		if got := r.Query(name); got != want {
			t.Errorf("Query(%q) = %q, want %q", name, got, want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { _ = r.Query("a") }); allocs != 0 {
		t.Errorf("Query of a plain value allocates %v times", allocs)
	}
}
