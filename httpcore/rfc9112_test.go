package httpcore

import (
	"strings"
	"sync/atomic"
	"testing"
)

// The RFC 9112 / RFC 9110 conformance tables. Every row is raw bytes written
// to a real loopback connection of a running server, and the responses are
// read back with net/http's response parser. One test per requirement
// group:
//
//	request line             TestRFC9112RequestLine
//	header fields            TestRFC9112HeaderFields
//	framing                  TestRFC9112Framing, TestRFC9112Chunked
//	smuggling                every row with smuggle set (all framing errors)
//	keep-alive               TestRFC9112KeepAlive
//	Expect                   TestRFC9110Expect
//	HEAD, 204, 304, Date, CL TestRFC9110ResponseFraming
//	body limit               TestRFC9110BodyLimit
//	timeouts                 TestRFC9112Timeouts
//	pipelining               TestRFC9112Pipelining

// rfcConfig keeps the limits small so that rows can cross them cheaply.
var rfcConfig = Config{MaxHeaderBytes: 4096, MaxHeaderCount: 20, MaxBodyBytes: 1024}

// smuggledReq is sent right behind every refused request: the server must
// never parse it, so never answer it.
const smuggledReq = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

// rfcCase is one exchange on a fresh connection.
type rfcCase struct {
	name    string
	steps   []step
	closed  bool // the server closes the connection after the last step
	smuggle bool // smuggledReq follows the last step in the same write
}

// good is a request answered with e on a connection that stays open.
func good(name, req string, e exp) rfcCase {
	return rfcCase{name: name, steps: []step{{req, []exp{e}}}}
}

// bad is a request refused with status: the connection closes and a
// request smuggled behind it is never answered.
func bad(name, req string, status int) rfcCase {
	return rfcCase{name: name, steps: []step{{req, []exp{{status: status}}}}, closed: true, smuggle: true}
}

// rfcServer is a test server whose handler counts requests that reached
// /smuggled and answers /host with what the request says about its target.
type rfcServer struct {
	*testServer
	smuggled atomic.Int32
}

func startRFCServer(t *testing.T, cfg Config) *rfcServer {
	rs := &rfcServer{}
	app := testHandler()
	rs.testServer = startServer(t, cfg, HandlerFunc(func(w *ResponseWriter, r *Request) {
		switch r.Path() {
		case "/smuggled":
			rs.smuggled.Add(1)
		case "/host", "*":
			w.WriteString("host=" + r.Host() + " path=" + r.Path() + " query=" + r.RawQuery())
			return
		}
		app.ServeHTTP(w, r)
	}))
	return rs
}

// run plays each case on its own connection.
func (rs *rfcServer) run(t *testing.T, cases []rfcCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := rs.smuggled.Load()
			c := rs.dial(t)
			for i, st := range tc.steps {
				send := st.send
				if tc.smuggle && i == len(tc.steps)-1 {
					send += smuggledReq
				}
				c.send(send)
				for _, e := range st.want {
					checkResponse(t, c, e)
				}
			}
			if tc.closed {
				c.expectClosed()
			}
			if n := rs.smuggled.Load() - before; n != 0 {
				t.Fatalf("a request smuggled behind a refused one was served (%d)", n)
			}
		})
	}
}

func TestRFC9112RequestLine(t *testing.T) {
	long := strings.Repeat("a", rfcConfig.MaxHeaderBytes)
	cases := []rfcCase{
		// method = token (RFC 9112 3.1, RFC 9110 9.1)
		good("extension method", "M-SEARCH /echo HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200, has: "M-SEARCH /echo HTTP/1.1\n"}),
		good("method is case-sensitive", "get /echo HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200, has: "get /echo "}),
		good("all tchars in method", "!#$%&'*+-.^_`|~09aZ /echo HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200, has: "!#$%&'*+-.^_`|~09aZ /echo "}),
		bad("method with a separator", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("method with non-ASCII", "G\xc9T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("method too long", strings.Repeat("M", 33)+" / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("empty method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		// origin-form (RFC 9112 3.2.1)
		good("origin-form", "GET /host?x=1 HTTP/1.1\r\nHost: h.example:8080\r\n\r\n", exp{status: 200, body: "host=h.example:8080 path=/host query=x=1"}),
		bad("fragment in target", "GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("non-ASCII in target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("relative target", "GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		// absolute-form (RFC 9112 3.2.2): Path is the path part, the host
		// comes from the target, not from Host.
		good("absolute-form", "GET http://t.example/host?q HTTP/1.1\r\nHost: h.example\r\n\r\n", exp{status: 200, body: "host=t.example path=/host query=q"}),
		good("absolute-form https upper-case scheme", "GET HTTPS://t.example:8443/host HTTP/1.1\r\nHost: h\r\n\r\n", exp{status: 200, body: "host=t.example:8443 path=/host query="}),
		good("absolute-form without path", "GET http://t.example HTTP/1.1\r\nHost: h\r\n\r\n", exp{status: 200, body: "Hello World\n"}),
		good("absolute-form IPv6", "GET http://[::1]:80/host HTTP/1.1\r\nHost: h\r\n\r\n", exp{status: 200, body: "host=[::1]:80 path=/host query="}),
		bad("absolute-form still needs Host", "GET http://t.example/ HTTP/1.1\r\n\r\n", 400),
		bad("absolute-form with userinfo", "GET http://u:p@t.example/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
		bad("absolute-form with empty host", "GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
		bad("absolute-form with port only", "GET http://:80/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
		bad("absolute-form other scheme", "GET ftp://t.example/x HTTP/1.1\r\nHost: h\r\n\r\n", 400),
		bad("absolute-form bad port", "GET http://t.example:8x/ HTTP/1.1\r\nHost: h\r\n\r\n", 400),
		// asterisk-form (RFC 9112 3.2.4): OPTIONS only
		good("asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200, body: "host=a path=* query="}),
		bad("asterisk-form with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("asterisk with more", "OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		// HTTP-version (RFC 9112 2.3)
		good("HTTP/1.1", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200, body: "Hello World\n"}),
		{name: "HTTP/1.0", closed: true, steps: []step{{"GET / HTTP/1.0\r\n\r\n", []exp{{status: 200, body: "Hello World\n", close: true}}}}},
		good("HTTP/1.9 served as 1.1", "GET / HTTP/1.9\r\nHost: a\r\n\r\n", exp{status: 200}),
		bad("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
		bad("HTTP/3.1", "GET / HTTP/3.1\r\nHost: a\r\n\r\n", 505),
		bad("HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505),
		bad("lower-case http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400),
		bad("version without minor", "GET / HTTP/1\r\nHost: a\r\n\r\n", 400),
		bad("two-digit major", "GET / HTTP/11.1\r\nHost: a\r\n\r\n", 400),
		bad("two-digit minor", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400),
		bad("letter in version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
		bad("missing version", "GET /\r\nHost: a\r\n\r\n", 400),
		bad("missing target", "GET HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("two spaces before target", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("two spaces before version", "GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
		bad("tabs as separators", "GET\t/\tHTTP/1.1\r\nHost: a\r\n\r\n", 400),
		bad("bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400),
		bad("bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
		good("empty lines before request line", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", exp{status: 200}),
		// request-target over the limit (RFC 9112 3)
		bad("target over the limit", "GET /"+long+" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
		bad("target over the limit after empty lines", "\r\n\r\nGET /"+long+" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

func TestRFC9112HeaderFields(t *testing.T) {
	const get = "GET /echo HTTP/1.1\r\nHost: a\r\n"
	// exactly MaxHeaderBytes, and one byte more
	pad := strings.Repeat("p", rfcConfig.MaxHeaderBytes-len(get+"X: \r\n\r\n"))
	var fields []string
	for i := range rfcConfig.MaxHeaderCount - 1 { // plus Host
		fields = append(fields, "X-"+strings.Repeat("f", i)+": v\r\n")
	}
	cases := []rfcCase{
		// field-name = token (RFC 9112 5, RFC 9110 5.1)
		good("all tchars in a name", get+"!#$%&'*+-.^_`|~09aZ: v\r\n\r\n", exp{status: 200, has: "h !#$%&'*+-.^_`|~09aZ: v\n"}),
		bad("separator in a name", get+"X@Y: v\r\n\r\n", 400),
		bad("space in a name", get+"X Y: v\r\n\r\n", 400),
		bad("non-ASCII in a name", get+"X\xe9: v\r\n\r\n", 400),
		bad("empty name", get+": v\r\n\r\n", 400),
		bad("no colon", get+"X-No-Colon\r\n\r\n", 400),
		// no whitespace between name and colon (RFC 9112 5.1)
		bad("space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
		bad("tab before colon", get+"X\t: v\r\n\r\n", 400),
		bad("space before colon of Transfer-Encoding", get+"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
		// obs-fold (RFC 9112 5.2)
		bad("obs-fold with space", get+"X: a\r\n b\r\n\r\n", 400),
		bad("obs-fold with tab", get+"X: a\r\n\tb\r\n\r\n", 400),
		bad("whitespace before the first field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
		// field values (RFC 9110 5.5, RFC 9112 2.2)
		good("HTAB and OWS in a value", get+"X:\t a\tb \t\r\n\r\n", exp{status: 200, has: "h X: a\tb\n"}),
		good("obs-text in a value", get+"X: caf\xc3\xa9\r\n\r\n", exp{status: 200, has: "h X: caf\xc3\xa9\n"}),
		good("empty value", get+"X:\r\n\r\n", exp{status: 200, has: "h X: \n"}),
		bad("bare CR in a value", get+"X: a\rb\r\n\r\n", 400),
		bad("bare LF in a value", get+"X: a\nb\r\n\r\n", 400),
		bad("NUL in a value", get+"X: a\x00b\r\n\r\n", 400),
		bad("SOH in a value", get+"X: a\x01b\r\n\r\n", 400),
		bad("US in a value", get+"X: a\x1fb\r\n\r\n", 400),
		bad("VT in a value", get+"X: a\x0bb\r\n\r\n", 400),
		bad("DEL in a value", get+"X: a\x7fb\r\n\r\n", 400),
		bad("CR LF LF ends nothing", get+"X: a\r\n\n", 400),
		// Host (RFC 9112 3.2, RFC 9110 7.2)
		bad("HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400),
		bad("two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),
		bad("two Host fields, other case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n", 400),
		bad("HTTP/1.0 with two Host fields", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400),
		bad("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
		bad("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
		bad("Host with a path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
		bad("Host with a bad port", "GET / HTTP/1.1\r\nHost: a:b\r\n\r\n", 400),
		good("empty Host", "GET /host HTTP/1.1\r\nHost:\r\n\r\n", exp{status: 200, body: "host= path=/host query="}),
		{name: "HTTP/1.0 without Host", closed: true, steps: []step{{"GET /host HTTP/1.0\r\n\r\n", []exp{{status: 200, body: "host= path=/host query=", close: true}}}}},
		// limits (RFC 6585 5)
		good("head of exactly MaxHeaderBytes", get+"X: "+pad+"\r\n\r\n", exp{status: 200}),
		bad("head one byte over MaxHeaderBytes", get+"X: "+pad+"p\r\n\r\n", 431),
		bad("many fields over MaxHeaderBytes", get+strings.Repeat("X: "+strings.Repeat("v", 300)+"\r\n", 15)+"\r\n", 431),
		good("MaxHeaderCount fields", get+strings.Join(fields, "")+"\r\n", exp{status: 200}),
		bad("MaxHeaderCount+1 fields", get+strings.Join(fields, "")+"X-Last: v\r\n\r\n", 431),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}
