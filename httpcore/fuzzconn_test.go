package httpcore

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// connFuzzMaxBody is MaxBodyBytes for the whole-connection fuzz target:
// larger than every input buffer, small enough to be fast.
const connFuzzMaxBody = 300 << 10

// FuzzConnStream feeds whole connections through a real loop: the input
// with a filler of size bytes inserted at offset at, so that short inputs
// carry bodies of any size (larger than every buffer), delivered whole and
// in random pieces, to a native handler or a streaming one (as the net/http
// adapter is). Whatever the bytes, the loop must not panic, its input buffer stays within the
// limit, the output parses as one response per request served (plus, at
// most, one refusal that comes last and closes the connection), and the
// connection is closed after the client's EOF. The native handler's output
// is the same however the input was cut.
func FuzzConnStream(f *testing.F) {
	for i, s := range parserSeeds {
		f.Add([]byte(s), uint16(len(s)), uint32(0), uint64(i), uint8(i%2))
	}
	for i, sz := range []uint32{readBufferSize + 1, 200_000, 480_000, connFuzzMaxBody, connFuzzMaxBody + 1} {
		cl := "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(int(sz)) + "\r\n\r\n"
		ch := "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(sz), 16) + "\r\n"
		for k, s := range []string{cl + nextRequest, ch + "\r\n0\r\n\r\n" + nextRequest} {
			at := len(cl)
			if k == 1 {
				at = len(ch)
			}
			f.Add([]byte(s), uint16(at), sz, uint64(i), uint8(k))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, at uint16, size uint32, seed uint64, mode uint8) {
		if len(in) > 8192 {
			return
		}
		size %= 2*connFuzzMaxBody + 1
		k := min(int(at), len(in))
		// A final CRLF CRLF lets a head refused only once it is complete be
		// refused however the input was cut (see FuzzConnSplit).
		stream := slices.Concat(in[:k], bigBody(int(size)), in[k:], []byte("\r\n\r\n"))
		native := mode&1 == 0
		whole := fuzzConn(t, [][]byte{stream}, native)
		split := fuzzConn(t, cutRandomly(rand.New(rand.NewPCG(seed, seed>>9)), stream), native)
		if native && !bytes.Equal(whole, split) {
			t.Fatalf("whole and split differ:\n%.300q\n%.300q", whole, split)
		}
	})
}

// recorder notes the methods of the requests a handler is given, on the
// loop, in order; it passes streamed bodies on if its handler takes them.
type recorder struct {
	h       Handler
	methods []string
}

func (r *recorder) ServeHTTP(w *ResponseWriter, req *Request) {
	r.methods = append(r.methods, strings.Clone(req.Method()))
	r.h.ServeHTTP(w, req)
}

type streamingRecorder struct{ *recorder }

func (streamingRecorder) StreamBodies() {}

// fuzzConn feeds pieces to a new connection, then EOF, checks the
// invariants and returns the output, without interim responses.
func fuzzConn(t *testing.T, pieces [][]byte, native bool) []byte {
	rec := &recorder{h: bodyEcho()}
	var h Handler = rec
	if !native {
		rec.h = streamEcho()
		h = streamingRecorder{rec}
	}
	hs := newHarness(t, Config{MaxBodyBytes: connFuzzMaxBody, MaxHeaderBytes: 4096}, h)
	defer hs.close()
	for _, p := range pieces {
		hs.feed(p)
		if cap(hs.c.in) > hs.l.lim.maxInput {
			t.Fatalf("input buffer of %d bytes, limit %d", cap(hs.c.in), hs.l.lim.maxInput)
		}
	}
	hs.shutWrite()
	for deadline := time.Now().Add(10 * time.Second); !hs.closed(); time.Sleep(20 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("connection not closed after EOF: state %d, async %v, body %v",
				hs.c.state, hs.c.async != nil, hs.c.body != nil)
		}
		hs.run()
	}
	out := bytes.ReplaceAll(hs.out, []byte(continueResponse), nil)
	checkConnOutput(t, out, rec.methods)
	return out
}

// checkConnOutput parses out as the responses to the requests with the
// given methods, and at most one more: a refusal (4xx, or 500 for a
// handler's panic) with Connection: close, which must come last.
func checkConnOutput(t *testing.T, out []byte, methods []string) {
	br := bufio.NewReader(bytes.NewReader(out))
	for i := 0; ; i++ {
		if _, err := br.Peek(1); err == io.EOF {
			if i < len(methods) {
				t.Fatalf("%d responses to %d requests in %.300q", i, len(methods), out)
			}
			return
		}
		method := "GET"
		if i < len(methods) {
			method = methods[i]
		}
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			t.Fatalf("response %d: %v in %.300q", i, err, out)
		}
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			t.Fatalf("response %d body: %v in %.300q", i, err, out)
		}
		if resp.Header.Get("Date") == "" {
			t.Fatalf("response %d without Date in %.300q", i, out)
		}
		if i < len(methods) {
			continue
		}
		if resp.StatusCode < 400 || !resp.Close {
			t.Fatalf("response %d to no request: %d, close %v", i, resp.StatusCode, resp.Close)
		}
		if _, err := br.Peek(1); err != io.EOF {
			t.Fatalf("output after a refusal: %.300q", out)
		}
	}
}
