package httpcore

import (
	"strconv"
	"strings"
	"testing"
)

// Message framing (RFC 9112 6-7). Every refused row is a bad() row: the
// answer carries Connection: close, the connection closes, and the request
// smuggled behind it in the same write is never answered.

func TestRFC9112Framing(t *testing.T) {
	const post = "POST /echo HTTP/1.1\r\nHost: a\r\n"
	const te = post + "Transfer-Encoding: "
	cl := func(v string) string { return post + "Content-Length: " + v + "\r\n\r\n" }
	cases := []rfcCase{
		// Content-Length = 1*DIGIT (RFC 9110 8.6)
		good("Content-Length", cl("5")+"hello", exp{status: 200, has: `body 5 "hello"`}),
		good("Content-Length with leading zeros", cl("005")+"hello", exp{status: 200, has: `body 5 "hello"`}),
		good("Content-Length with OWS", post+"Content-Length:\t 5 \t\r\n\r\nhello", exp{status: 200, has: `body 5 "hello"`}),
		good("Content-Length 0", cl("0"), exp{status: 200, has: `body 0 ""`}),
		good("identical Content-Length fields", post+"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", exp{status: 200, has: `body 5 "hello"`}),
		good("identical Content-Length list", cl("5, 5")+"hello", exp{status: 200, has: `body 5 "hello"`}),
		good("identical Content-Length list and field", post+"Content-Length: 5,5\r\nContent-Length: 05\r\n\r\nhello", exp{status: 200, has: `body 5 "hello"`}),
		{name: "body that looks like a request", steps: []step{{
			cl(strconv.Itoa(len(smuggledReq))) + smuggledReq + "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
			[]exp{{status: 200, has: `"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"`}, {status: 200, body: "Hello World\n"}},
		}}},
		bad("differing Content-Length fields", post+"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
		bad("differing Content-Length list", cl("5, 6")+"hello!", 400),
		bad("empty Content-Length", cl(""), 400),
		bad("Content-Length with plus sign", cl("+5")+"hello", 400),
		bad("Content-Length with minus sign", cl("-5")+"hello", 400),
		bad("Content-Length with inner space", cl("5 5")+"hello", 400),
		bad("Content-Length hex", cl("0x5")+"hello", 400),
		bad("Content-Length decimal point", cl("5.0")+"hello", 400),
		bad("Content-Length empty list element", cl("5,")+"hello", 400),
		bad("Content-Length leading comma", cl(",5")+"hello", 400),
		bad("Content-Length overflow", cl("99999999999999999999999")+"hello", 413),
		bad("Content-Length 2^63", cl("9223372036854775808")+"hello", 413),
		// Transfer-Encoding (RFC 9112 6.1, 6.3)
		good("chunked", te+"chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		good("chunked any case", te+"ChUnKeD\r\n\r\n5\r\nhello\r\n0\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		good("empty list elements around chunked", te+" , chunked ,\r\n\r\n5\r\nhello\r\n0\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		bad("gzip before chunked (not decoded)", te+"gzip, chunked\r\n\r\n0\r\n\r\n", 501),
		bad("unknown coding before chunked", te+"x-foo, chunked\r\n\r\n0\r\n\r\n", 501),
		bad("codings split over fields", te+"gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
		bad("chunked not last", te+"chunked, gzip\r\n\r\n0\r\n\r\n", 400),
		bad("only an unknown coding", te+"x-foo\r\n\r\n0\r\n\r\n", 400), // 6.3 item 4: length unknown
		bad("only gzip", te+"gzip\r\n\r\n0\r\n\r\n", 400),
		bad("chunked twice", te+"chunked, chunked\r\n\r\n0\r\n\r\n", 400),
		bad("chunked in two fields", te+"chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
		bad("chunked with a parameter", te+"chunked;q=1\r\n\r\n0\r\n\r\n", 400),
		bad("chunked with a prefix", te+"xchunked\r\n\r\n0\r\n\r\n", 400),
		bad("empty Transfer-Encoding", te+"\r\n\r\n0\r\n\r\n", 400),
		bad("Transfer-Encoding quoted", te+"\"chunked\"\r\n\r\n0\r\n\r\n", 400),
		bad("Transfer-Encoding with VT", te+"\x0bchunked\r\n\r\n0\r\n\r\n", 400),
		bad("Transfer-Encoding then Content-Length", te+"chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
		bad("Content-Length then Transfer-Encoding", post+"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
		bad("Content-Length 0 and chunked", post+"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
		bad("Transfer-Encoding in HTTP/1.0", "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
		bad("Transfer-Encoding and Content-Length in HTTP/1.0", "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

func TestRFC9112Chunked(t *testing.T) {
	const head = "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
	longExt := ";x=" + strings.Repeat("e", maxChunkLine)
	var trailers []string
	for i := range rfcConfig.MaxHeaderCount + 1 {
		trailers = append(trailers, "T-"+strings.Repeat("t", i)+": v\r\n")
	}
	cases := []rfcCase{
		// chunk-size = 1*HEXDIG (RFC 9112 7.1)
		good("hex sizes of both cases", head+"a\r\n0123456789\r\nA\r\n0123456789\r\n0\r\n\r\n", exp{status: 200, has: "body 20 "}),
		good("leading zeros", head+"0005\r\nhello\r\n000\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		good("empty body", head+"0\r\n\r\n", exp{status: 200, has: `body 0 ""`}),
		bad("0x prefix", head+"0x5\r\nhello\r\n0\r\n\r\n", 400),
		bad("plus sign", head+"+5\r\nhello\r\n0\r\n\r\n", 400),
		bad("minus sign", head+"-5\r\nhello\r\n0\r\n\r\n", 400),
		bad("space before size", head+" 5\r\nhello\r\n0\r\n\r\n", 400),
		bad("space after size", head+"5 \r\nhello\r\n0\r\n\r\n", 400),
		bad("tab after size", head+"5\t\r\nhello\r\n0\r\n\r\n", 400),
		bad("no size", head+"\r\nhello\r\n0\r\n\r\n", 400),
		bad("non-hex size", head+"g\r\nhello\r\n0\r\n\r\n", 400),
		bad("size overflow", head+"ffffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n", 413),
		bad("bare LF after size", head+"5\nhello\r\n0\r\n\r\n", 400),
		bad("bare CR after size", head+"5\rhello\r\n0\r\n\r\n", 400),
		// chunk-ext: parsed against the grammar, bounded, ignored (7.1.1)
		good("extensions", head+"5;a;b=c;d=\"q \\\" s\"\r\nhello\r\n0;last=1\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		good("BWS around ; and =", head+"5 ; a = b\r\nhello\r\n0\r\n\r\n", exp{status: 200, has: `body 5 "hello"`}),
		bad("extension without a name", head+"5;=b\r\nhello\r\n0\r\n\r\n", 400),
		bad("extension without a value", head+"5;a=\r\nhello\r\n0\r\n\r\n", 400),
		bad("space inside an extension", head+"5;a b\r\nhello\r\n0\r\n\r\n", 400),
		bad("unterminated quoted value", head+"5;a=\"b\r\nhello\r\n0\r\n\r\n", 400),
		bad("CTL in an extension", head+"5;a=\x01\r\nhello\r\n0\r\n\r\n", 400),
		bad("extension over the line limit", head+"5"+longExt+"\r\nhello\r\n0\r\n\r\n", 400),
		// chunk data and its CRLF (7.1)
		bad("data longer than size", head+"5\r\nhello!\r\n0\r\n\r\n", 400),
		bad("data shorter than size", head+"5\r\nhell\r\n0\r\n\r\n", 400),
		bad("no CRLF after data", head+"5\r\nhello0\r\n\r\n", 400),
		bad("two other bytes instead of CRLF", head+"5\r\nhelloXY0\r\n\r\n", 400),
		bad("bare LF after data", head+"5\r\nhello\n0\r\n\r\n", 400),
		// trailer section (7.1.2): parsed, bounded by count and bytes
		good("trailers", head+"5\r\nhello\r\n0\r\nT-A: 1\r\nT-B:\t2 \r\n\r\n", exp{status: 200, has: "t T-A: 1\nt T-B: 2\nbody 5 \"hello\""}),
		good("framing fields in trailers are only trailers", head+"0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", exp{status: 200, has: "t Content-Length: 5\n"}),
		bad("obs-fold in trailers", head+"0\r\nT: a\r\n b\r\n\r\n", 400),
		bad("space before colon in trailers", head+"0\r\nT : a\r\n\r\n", 400),
		bad("NUL in a trailer", head+"0\r\nT: a\x00\r\n\r\n", 400),
		bad("bare LF ends trailers", head+"0\r\nT: a\r\n\n", 400),
		bad("too many trailers", head+"0\r\n"+strings.Join(trailers, "")+"\r\n", 431),
		bad("trailers over MaxHeaderBytes", head+"0\r\nT: "+strings.Repeat("v", rfcConfig.MaxHeaderBytes)+"\r\n\r\n", 431),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}
