package httpcore

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"
)

// bodyEcho answers a request with its body, exactly; GET /next answers
// "next", so that a request pipelined after a body can be told apart.
func bodyEcho() Handler {
	return HandlerFunc(func(w *ResponseWriter, r *Request) {
		if r.Path() == "/next" {
			w.WriteString("next")
			return
		}
		w.Write(r.Body())
	})
}

// streamEcho is bodyEcho for a StreamingHandler, as the net/http adapter
// is one: the body is read as it streams in, on another goroutine; one
// over MaxBodyBytes is answered with 413.
func streamEcho() Handler { return streamEchoHandler{} }

type streamEchoHandler struct{}

func (streamEchoHandler) StreamBodies() {}

func (streamEchoHandler) ServeHTTP(w *ResponseWriter, r *Request) {
	if r.Path() == "/next" {
		w.WriteString("next")
		return
	}
	body := r.BodyStream()
	w.Async()
	go func() {
		defer w.End()
		if body == nil {
			return
		}
		b, err := io.ReadAll(body)
		var tooLarge *BodyTooLargeError
		switch {
		case errors.As(err, &tooLarge):
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			w.WriteString("too large\n")
		case err != nil:
			w.WriteHeader(http.StatusBadRequest)
			w.WriteString(err.Error())
		default:
			w.Write(b)
		}
	}()
}

// bodyRequest returns a request carrying body, with a Content-Length or,
// if chunked, in chunks of at most chunk bytes.
func bodyRequest(method string, body []byte, chunked bool, chunk int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s /echo HTTP/1.1\r\nHost: a\r\n", method)
	if !chunked {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n", len(body))
		b.Write(body)
		return b.Bytes()
	}
	b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	for len(body) > 0 {
		n := min(len(body), chunk)
		fmt.Fprintf(&b, "%x\r\n", n)
		b.Write(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

const nextRequest = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"

// TestBodyReadLargerThanReadBuffer reads a body into a connection's input
// buffer in reads larger than the loop's shared read buffer: the head
// arrives first, then the rest of the body in one piece.
func TestBodyReadLargerThanReadBuffer(t *testing.T) {
	for _, size := range []int{readBufferSize + 1, 95232, 200_000} {
		for _, chunked := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/chunked=%v", size, chunked), func(t *testing.T) {
				h := newHarness(t, Config{}, bodyEcho())
				defer h.close()
				body := bigBody(size)
				req := bodyRequest("POST", body, chunked, 100_000)
				head := bytes.Index(req, []byte("\r\n\r\n")) + 4
				h.feed(req[:head])
				h.feed(append(req[head:], nextRequest...))
				checkEchoes(t, h.out, body, "next")
				if !h.c.idle() || h.c.in != nil {
					t.Fatalf("after the requests: state %d, in %d/%d", h.c.state, len(h.c.in), cap(h.c.in))
				}
			})
		}
	}
}

// TestLargeBodiesOverTCP sends the bodies that once crashed a worker, in
// one write each, to a native and a streaming handler (as the net/http adapter is); a request pipelined
// after each must be served too.
func TestLargeBodiesOverTCP(t *testing.T) {
	cases := []struct {
		method  string
		size    int
		chunked bool
	}{
		{"POST", 70_000, false},
		{"POST", 200_000, false},
		{"POST", 1_000_000, false},
		{"POST", 480_000, true},
		{"GET", 300_000, false},
	}
	servers := map[string]*testServer{
		"native":    startServer(t, Config{}, bodyEcho()),
		"streaming": startServer(t, Config{}, streamEcho()),
	}
	for name, ts := range servers {
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/%s-%d-chunked=%v", name, tc.method, tc.size, tc.chunked), func(t *testing.T) {
				c := ts.dial(t)
				body := bigBody(tc.size)
				c.send(string(bodyRequest(tc.method, body, tc.chunked, 32<<10)) + nextRequest)
				if r := c.read(tc.method); r.StatusCode != 200 || r.body != string(body) {
					t.Fatalf("status %d, body of %d bytes, want %d", r.StatusCode, len(r.body), len(body))
				}
				if r := c.read("GET"); r.StatusCode != 200 || r.body != "next" {
					t.Fatalf("pipelined request: %d %q", r.StatusCode, r.body)
				}
			})
		}
	}
}

// checkEchoes parses out as responses whose bodies must be the given ones,
// in order, each a 200, with nothing after them.
func checkEchoes(t testing.TB, out []byte, bodies ...any) {
	t.Helper()
	rest := checkResponseSeq(t, out, len(bodies), func(i int, status int, body []byte) {
		var want []byte
		switch b := bodies[i].(type) {
		case string:
			want = []byte(b)
		case []byte:
			want = b
		}
		if status != 200 || !bytes.Equal(body, want) {
			t.Fatalf("response %d: status %d, body of %d bytes %.40q, want %d bytes %.40q",
				i, status, len(body), body, len(want), want)
		}
	})
	if len(rest) > 0 {
		t.Fatalf("%d bytes after the responses: %.80q", len(rest), rest)
	}
}

// checkResponseSeq parses n responses from out and passes each to check; it
// returns what follows them.
func checkResponseSeq(t testing.TB, out []byte, n int, check func(i, status int, body []byte)) []byte {
	t.Helper()
	r := bytes.NewReader(out)
	br := bufio.NewReader(r)
	for i := range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d of %d: %v (output %d bytes: %.200q)", i, n, err, len(out), out)
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("response %d body: %v", i, err)
		}
		if cl := resp.Header.Get("Content-Length"); cl != "" && cl != strconv.Itoa(len(body)) {
			t.Fatalf("response %d: Content-Length %s, body %d", i, cl, len(body))
		}
		check(i, resp.StatusCode, body)
	}
	rest, _ := io.ReadAll(br)
	return rest
}
