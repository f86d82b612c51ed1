package httpcore

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Connection management, expectations, response framing, limits, timeouts
// and pipelining (RFC 9112 9, RFC 9110 6.4, 8.6, 10.1.1, 15). The table
// scaffolding is in rfc9112_test.go.

func TestRFC9112KeepAlive(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: a\r\n"
	const get10 = "GET / HTTP/1.0\r\n"
	hello := exp{status: 200, body: "Hello World\n", hdr: map[string]string{"Connection": ""}}
	kept := exp{status: 200, body: "Hello World\n", hdr: map[string]string{"Connection": "keep-alive"}}
	closing := exp{status: 200, body: "Hello World\n", close: true}
	closes := func(name, req string) rfcCase {
		return rfcCase{name: name, steps: []step{{req, []exp{closing}}}, closed: true, smuggle: true}
	}
	cases := []rfcCase{
		{name: "HTTP/1.1 persists by default", steps: []step{{get + "\r\n", []exp{hello}}, {get + "\r\n", []exp{hello}}}},
		{name: "HTTP/1.1 persists with keep-alive", steps: []step{{get + "Connection: keep-alive\r\n\r\n", []exp{hello}}, {get + "\r\n", []exp{hello}}}},
		{name: "closed is not close", steps: []step{{get + "Connection: closed, xclose\r\n\r\n", []exp{hello}}, {get + "\r\n", []exp{hello}}}},
		closes("HTTP/1.1 Connection: close", get+"Connection: close\r\n\r\n"),
		closes("close in any case", get+"Connection: CLOSE\r\n\r\n"),
		closes("close as a list token", get+"Connection: foo, close\r\n\r\n"),
		closes("close between empty elements", get+"Connection: ,close,\r\n\r\n"),
		closes("close in a second Connection field", get+"Connection: foo\r\nConnection: close\r\n\r\n"),
		closes("close wins over keep-alive", get+"Connection: keep-alive, close\r\n\r\n"),
		closes("HTTP/1.0 closes by default", get10+"\r\n"),
		closes("HTTP/1.0 keep-alive and close", get10+"Connection: keep-alive, close\r\n\r\n"),
		{name: "HTTP/1.0 keep-alive honoured and echoed", steps: []step{
			{get10 + "Connection: keep-alive\r\n\r\n", []exp{kept}},
			{get10 + "Connection: foo, Keep-Alive\r\n\r\n", []exp{kept}},
			{get10 + "\r\n", []exp{closing}},
		}, closed: true},
		{name: "unread body is skipped by its length", steps: []step{{
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\nignoredGET / HTTP/1.1\r\nHost: a\r\n\r\n", []exp{hello, hello},
		}}},
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

func TestRFC9110Expect(t *testing.T) {
	const post = "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
	const post10 = "POST /echo HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 4\r\n"
	echoed := exp{status: 200, has: `body 4 "body"`}
	cases := []rfcCase{
		{name: "100 Continue before the body is sent", steps: []step{
			{post + "Expect: 100-continue\r\n\r\n", []exp{{status: 100}}},
			{"body", []exp{echoed}},
		}},
		{name: "100-continue in any case", steps: []step{
			{post + "Expect: 100-Continue\r\n\r\n", []exp{{status: 100}}},
			{"body", []exp{echoed}},
		}},
		// The body came with the head: no 100 is needed, the first
		// response read is the final one.
		good("100-continue with the body sent", post+"Expect: 100-continue\r\n\r\nbody", echoed),
		bad("other expectation", post+"Expect: teapot\r\n\r\nbody", 417),
		bad("100-continue in a list", post+"Expect: 100-continue, x\r\n\r\nbody", 417),
		bad("100-continue with a parameter", post+"Expect: 100-continue;a=b\r\n\r\nbody", 417),
		bad("too large a body gets 413, not 100", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\nExpect: 100-continue\r\n\r\n", 413),
		// RFC 9110 10.1.1: a server MUST ignore 100-continue in HTTP/1.0;
		// had a 100 been sent, it would be read as the first response.
		{name: "HTTP/1.0 100-continue ignored", steps: []step{
			{post10 + "Expect: 100-continue\r\n\r\n", nil},
			{"body", []exp{{status: 200, has: `body 4 "body"`, hdr: map[string]string{"Connection": "keep-alive"}}}},
		}},
		good("HTTP/1.0 other expectation ignored", post10+"Expect: teapot\r\n\r\nbody",
			exp{status: 200, has: `body 4 "body"`, hdr: map[string]string{"Connection": "keep-alive"}}),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

func TestRFC9110ResponseFraming(t *testing.T) {
	const then = "GET / HTTP/1.1\r\nHost: a\r\n\r\n" // proves nothing followed the head
	hello := exp{status: 200, body: "Hello World\n", hdr: map[string]string{"Content-Length": "12"}}
	noLength := map[string]string{"Content-Length": "", "Transfer-Encoding": ""}
	cases := []rfcCase{
		{name: "HEAD: no body, GET's length", steps: []step{{"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n" + then, []exp{
			{method: "HEAD", status: 200, hdr: map[string]string{"Content-Length": "12", "Content-Type": "text/plain"}}, hello,
		}}}},
		{name: "HEAD of a large body", steps: []step{{"HEAD /big?n=100000 HTTP/1.1\r\nHost: a\r\n\r\n" + then, []exp{
			{method: "HEAD", status: 200, hdr: map[string]string{"Content-Length": "100000"}}, hello,
		}}}},
		{name: "HEAD of a 404", steps: []step{{"HEAD /nowhere HTTP/1.1\r\nHost: a\r\n\r\n" + then, []exp{
			{method: "HEAD", status: 404, hdr: map[string]string{"Content-Length": "10"}}, hello,
		}}}},
		{name: "204: no body, no Content-Length", steps: []step{{"GET /status?code=204 HTTP/1.1\r\nHost: a\r\n\r\n" + then, []exp{
			{status: 204, hdr: noLength}, hello,
		}}}},
		{name: "304: no body, no Content-Length", steps: []step{{"GET /status?code=304 HTTP/1.1\r\nHost: a\r\n\r\n" + then, []exp{
			{status: 304, hdr: noLength}, hello,
		}}}},
		{name: "Date and Content-Length on a 200", steps: []step{{then, []exp{hello}}}},
		{name: "Date and Content-Length on an empty 200", steps: []step{{"GET /big?n=0 HTTP/1.1\r\nHost: a\r\n\r\n", []exp{
			{status: 200, hdr: map[string]string{"Content-Length": "0"}},
		}}}},
		{name: "Date and Content-Length on a 201", steps: []step{{"GET /status?code=201 HTTP/1.1\r\nHost: a\r\n\r\n", []exp{
			{status: 201, body: "status body", hdr: map[string]string{"Content-Length": "11"}},
		}}}},
		{name: "Date and Content-Length on a refused request", closed: true, smuggle: true, steps: []step{{"GET / HTTP/1.1\r\n\r\n", []exp{
			{status: 400, body: "Bad Request\n", hdr: map[string]string{"Content-Length": "12", "Content-Type": "text/plain; charset=utf-8"}},
		}}}},
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

// TestRFC9110HeadMatchesGet compares the fields of HEAD and GET responses
// for the same resource (RFC 9110 9.3.2), and checks the HEAD response
// ends at its head.
func TestRFC9110HeadMatchesGet(t *testing.T) {
	ts := startRFCServer(t, rfcConfig)
	for _, target := range []string{"/", "/big?n=70000", "/nowhere", "/status?code=204", "/status?code=201"} {
		t.Run(target, func(t *testing.T) {
			c := ts.dial(t)
			c.send("GET " + target + " HTTP/1.1\r\nHost: a\r\n\r\nHEAD " + target + " HTTP/1.1\r\nHost: a\r\n\r\n")
			g, h := c.read("GET"), c.read("HEAD")
			if g.StatusCode != h.StatusCode || h.body != "" {
				t.Fatalf("HEAD status %d body %q, GET status %d", h.StatusCode, h.body, g.StatusCode)
			}
			g.Header.Del("Date")
			h.Header.Del("Date")
			if !equalHeader(g.Header, h.Header) {
				t.Fatalf("GET fields %v, HEAD fields %v", g.Header, h.Header)
			}
			c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n") // nothing was left after the HEAD response
			if r := c.read("GET"); r.body != "Hello World\n" {
				t.Fatalf("after HEAD: %q", r.body)
			}
		})
	}
}

func equalHeader(a, b http.Header) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if strings.Join(v, "\n") != strings.Join(b[k], "\n") {
			return false
		}
	}
	return true
}

func TestRFC9110BodyLimit(t *testing.T) {
	const post = "POST /echo HTTP/1.1\r\nHost: a\r\n"
	const chunked = post + "Transfer-Encoding: chunked\r\n\r\n"
	limit := strings.Repeat("b", int(rfcConfig.MaxBodyBytes))
	half := strings.Repeat("b", 512)
	cases := []rfcCase{
		good("Content-Length at MaxBodyBytes", post+"Content-Length: 1024\r\n\r\n"+limit, exp{status: 200, has: "body 1024 "}),
		good("chunked at MaxBodyBytes", chunked+"200\r\n"+half+"\r\n200\r\n"+half+"\r\n0\r\n\r\n", exp{status: 200, has: "body 1024 "}),
		// The head alone is answered: the client need not send the body.
		bad("Content-Length over, answered before the body", post+"Content-Length: 1025\r\n\r\n", 413),
		bad("chunk over, answered at its size line", chunked+"401\r\n", 413),
		bad("chunked growing past the limit", chunked+"200\r\n"+half+"\r\n200\r\n"+half+"\r\n1\r\n", 413),
		bad("many small chunks past the limit", chunked+strings.Repeat("1\r\nb\r\n", 1025), 413),
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

func TestRFC9112Pipelining(t *testing.T) {
	const host = " HTTP/1.1\r\nHost: a\r\n\r\n"
	echo := func(tag string) exp { return exp{status: 200, has: "GET /echo?" + tag + " "} }
	pipeline := "GET /echo?1" + host + "POST /echo?2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc" +
		"POST /echo?3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n" + "HEAD /" + host + "GET /echo?5" + host
	inOrder := []exp{echo("1"), {status: 200, has: "POST /echo?2 HTTP/1.1\nh Host: a\nh Content-Length: 3\nbody 3 \"abc\""},
		{status: 200, has: "body 3 \"xyz\""}, {method: "HEAD", status: 200}, echo("5")}
	var pieces []step
	for i := 0; i < len(pipeline); i += 7 {
		pieces = append(pieces, step{pipeline[i:min(i+7, len(pipeline))], nil})
	}
	pieces[len(pieces)-1].want = inOrder
	cases := []rfcCase{
		{name: "three in one write", steps: []step{{"GET /echo?1" + host + "GET /echo?2" + host + "GET /echo?3" + host, []exp{echo("1"), echo("2"), echo("3")}}}},
		{name: "bodies, HEAD and GET in one write", steps: []step{{pipeline, inOrder}}},
		{name: "the same in 7-byte writes", steps: pieces},
		{name: "slow async first, then sync, then fast async", steps: []step{{
			"GET /async?ms=150&tag=first" + host + "GET /echo?second" + host + "GET /async?ms=1&tag=third" + host,
			[]exp{{status: 200, body: "async first"}, echo("second"), {status: 200, body: "async third"}},
		}}},
		{name: "async then a refused request", closed: true, smuggle: true, steps: []step{{
			"GET /async?ms=100&tag=first" + host + "GET / HTTP/1.1\r\n\r\n",
			[]exp{{status: 200, body: "async first"}, {status: 400}},
		}}},
		{name: "a refused request in the middle", closed: true, smuggle: true, steps: []step{{
			"GET /echo?1" + host + "GET /echo?2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
			[]exp{echo("1"), {status: 400}},
		}}},
	}
	startRFCServer(t, rfcConfig).run(t, cases)
}

// TestRFC9112Timeouts runs each timeout of the per-loop timer heap on a real
// socket: what the client sends at once, what it then trickles one byte per
// tick, and when and how the server must close.
func TestRFC9112Timeouts(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name    string
		cfg     Config
		first   string // sent at once; a response to it is read when want200
		want200 bool
		trickle string        // then sent one byte per tick, timed from its start
		tick    time.Duration // trickle interval
		status  int           // 408, 200 (served in time), or 0: closed without a response
		after   time.Duration // the close comes after this long; for 200, the response
	}{
		{name: "header timeout, nothing sent", cfg: Config{HeaderTimeout: 300 * ms}, after: 300 * ms},
		{name: "header timeout, head trickled", cfg: Config{HeaderTimeout: 300 * ms},
			trickle: "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: " + strings.Repeat("s", 100), tick: 20 * ms, status: 408, after: 300 * ms},
		{name: "head trickled within the header timeout", cfg: Config{HeaderTimeout: 2 * time.Second},
			trickle: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", tick: 5 * ms, status: 200, after: 130 * ms},
		{name: "idle timeout", cfg: Config{IdleTimeout: 300 * ms}, first: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", want200: true, after: 300 * ms},
		{name: "request timeout, body trickled", cfg: Config{RequestTimeout: 400 * ms},
			first: "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n", trickle: strings.Repeat("b", 100), tick: 20 * ms, status: 408, after: 400 * ms},
		{name: "request timeout, chunked body trickled", cfg: Config{RequestTimeout: 400 * ms},
			first: "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", trickle: strings.Repeat("1\r\nb\r\n", 30), tick: 20 * ms, status: 408, after: 400 * ms},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := startServer(t, tt.cfg, testHandler()).dial(t)
			start := time.Now()
			if tt.first != "" {
				c.send(tt.first)
			}
			if tt.want200 {
				checkResponse(t, c, exp{status: 200})
				start = time.Now()
			}
			stop := make(chan struct{})
			done := trickle(c, tt.trickle, tt.tick, stop)
			defer func() { close(stop); <-done }()
			if tt.status == 200 { // served in time: the connection stays open
				checkResponse(t, c, exp{status: 200, body: "Hello World\n"})
				if elapsed := time.Since(start); elapsed < tt.after || elapsed > tt.cfg.HeaderTimeout {
					t.Fatalf("answered after %v", elapsed)
				}
				return
			}
			got, err := io.ReadAll(c.br)
			if err != nil && !isReset(err) {
				t.Fatalf("read: %v", err)
			}
			checkTimeout(t, got, tt.status, time.Since(start), tt.after)
		})
	}
}

// trickle writes s to c one byte per tick until done or stop is closed.
func trickle(c *clientConn, s string, tick time.Duration, stop chan struct{}) chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < len(s); i++ {
			if _, err := c.Write([]byte{s[i]}); err != nil {
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(tick):
			}
		}
	}()
	return done
}

func checkTimeout(t *testing.T, got []byte, status int, elapsed, after time.Duration) {
	t.Helper()
	switch {
	case status == 0 && len(got) > 0:
		t.Fatalf("got %q, want a silent close", got)
	case status == 408 && len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 408 Request Timeout\r\n")):
		t.Fatalf("got %q, want a 408", got)
	case status == 408 && len(got) > 0 && !bytes.Contains(got, []byte("\r\nConnection: close\r\n")):
		t.Fatalf("408 without Connection: close: %q", got)
	case elapsed < after-50*time.Millisecond:
		t.Fatalf("closed after %v, before %v", elapsed, after)
	case elapsed > after+time.Second:
		t.Fatalf("closed after %v, want about %v", elapsed, after)
	}
}
