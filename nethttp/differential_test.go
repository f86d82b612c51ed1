package nethttp

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
)

// The differential suite sends the same raw bytes to the same handler
// behind net/http's own server and behind the adapter, and compares what
// comes back. Responses must match byte for byte, except:
//
//   - Date values (the clocks differ), multipart boundaries (random), and
//     the order of header fields: net/http writes Date, Content-Length,
//     Content-Type, Connection and Transfer-Encoding after the handler's
//     fields, the engine writes them in another order. Fields are compared
//     as a sorted list of lines.
//   - The differences a case lists in its diff field, each with its
//     reason (see the diff constants).

// diff is a set of differences a case expects, and so does not compare.
type diff uint8

const (
	// diffFraming: a body the handler wrote before returning, over 2 KiB
	// and up to 64 KiB, goes out with a Content-Length from the adapter,
	// which buffers 64 KiB; net/http buffers 2 KiB and chunks the rest.
	// Longer bodies are chunked by both, in pieces of other sizes. For
	// HEAD, the engine counts what the handler wrote past 2 KiB and sends
	// its Content-Length, net/http sends none. The decoded bodies and
	// trailers must match.
	diffFraming diff = 1 << iota
	// diffVersion: the engine answers HTTP/1.0 requests with HTTP/1.1 in
	// the status line (RFC 9110 2.5 allows either) and says Connection:
	// close when it closes; net/http answers HTTP/1.0 and leaves close
	// implicit.
	diffVersion
	// diffRefused: the strict parser refuses a request net/http takes, or
	// refuses it with another status or body; both must refuse with a 4xx
	// or 5xx and close.
	diffRefused
	// diffContinue: the client sent the body with an Expect:
	// 100-continue head; net/http sends 100 Continue anyway when the
	// handler reads, the engine does not if the body is there already
	// (RFC 9110 10.1.1 lets it), which depends on whether the handler
	// reads before the loop has passed the body on.
	diffContinue
	// diffTrailer: trailers set with http.TrailerPrefix on a body short
	// enough for a Content-Length: net/http sends the Content-Length and
	// drops them, the adapter chunks the body to send them (and so sends
	// no Content-Length for HEAD, as for the GET).
	diffTrailer
	// diffShort: the handler set a Content-Length and wrote less before
	// returning; the engine sends the length of what was written, net/http
	// the declared one, and closes the connection short of it.
	diffShort
)

type diffCase struct {
	name string
	reqs []string // sent in one write each, 50 ms apart
	diff diff
}

var diffModTime = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// diffHandler is the application behind both servers.
func diffHandler(dir string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/size/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Header().Set("Content-Type", "text/plain")
		w.Write(bigBody(n))
	})
	mux.HandleFunc("/pieces/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		b := bigBody(n)
		for len(b) > 0 {
			k := min(len(b), 1000)
			w.Write(b[:k])
			b = b[k:]
		}
	})
	mux.HandleFunc("/length/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(bigBody(n))
	})
	mux.HandleFunc("/status/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		w.Header().Set("X-Status", r.PathValue("code"))
		w.WriteHeader(code)
		io.WriteString(w, "status body")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/sniff/{kind}", func(w http.ResponseWriter, r *http.Request) {
		body := map[string]string{
			"html": "<!DOCTYPE html><p>hi</p>", "png": "\x89PNG\r\n\x1a\nrest", "text": "plain words",
			"json": `{"a":1}`, "gif": "GIF89a....", "binary": "\x00\x01\x02\x03", "xml": "<?xml version=\"1.0\"?><a/>",
		}[r.PathValue("kind")]
		io.WriteString(w, body)
	})
	mux.HandleFunc("/flush/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.PathValue("n"))
		io.WriteString(w, "head;")
		w.(http.Flusher).Flush()
		for i := 0; i < n; i++ {
			io.WriteString(w, "piece "+strconv.Itoa(i)+";")
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("/flush-empty", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.(http.Flusher).Flush()
	})
	mux.HandleFunc("/trailer/{how}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("how") {
		case "declared":
			w.Header().Set("Trailer", "X-Sum, X-Count")
			io.WriteString(w, "body")
			w.Header().Set("X-Sum", "42")
			w.Header().Set("X-Count", "1")
		case "prefix":
			io.WriteString(w, "body")
			w.Header().Set(http.TrailerPrefix+"X-Late", "late")
		case "flushed":
			w.Header().Set("Trailer", "X-Sum")
			io.WriteString(w, "body")
			w.(http.Flusher).Flush()
			w.Header().Set("X-Sum", "7")
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %q err=%v cl=%d te=%v trailer=%v host=%s close=%v",
			r.Method, r.RequestURI, b, err, r.ContentLength, r.TransferEncoding, r.Trailer, r.Host, r.Close)
	})
	mux.HandleFunc("/ignore-body", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ignored") })
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "something failed", http.StatusTeapot)
	})
	mux.HandleFunc("/redirect/{code}", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.PathValue("code"))
		http.Redirect(w, r, "/target?q=1", code)
	})
	mux.HandleFunc("/notfound", http.NotFound)
	mux.HandleFunc("/content", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "data.txt", diffModTime, strings.NewReader(strings.Repeat("0123456789", 100)))
	})
	mux.HandleFunc("/etag", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		http.ServeContent(w, r, "", diffModTime, strings.NewReader("tagged content"))
	})
	mux.Handle("/files/", http.StripPrefix("/files", http.FileServer(http.Dir(dir))))
	mux.HandleFunc("/panic/{when}", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("when") {
		case "early":
			panic("early")
		case "written":
			io.WriteString(w, "lost")
			panic("after writing")
		case "abort":
			panic(http.ErrAbortHandler)
		case "flushed":
			io.WriteString(w, "kept")
			w.(http.Flusher).Flush()
			panic("after flushing")
		}
	})
	mux.HandleFunc("/interim", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{}`)
	})
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "closing")
	})
	mux.HandleFunc("/wrote-too-much", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		_, err := io.WriteString(w, "abcdef")
		w.Header().Set("X-Err", fmt.Sprint(err)) // too late to be sent
	})
	mux.HandleFunc("/readfrom", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, strings.NewReader(strings.Repeat("r", 3000)))
	})
	return mux
}

func get(path string) string  { return "GET " + path + " HTTP/1.1\r\nHost: a\r\n\r\n" }
func head(path string) string { return "HEAD " + path + " HTTP/1.1\r\nHost: a\r\n\r\n" }
func getH(path, fields string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: a\r\n" + fields + "\r\n"
}
func post(path, fields, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: a\r\n" + fields + "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
}
func chunkedPost(path, fields, chunks string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n" + fields + "\r\n" + chunks
}

func one(name, req string, d ...diff) diffCase {
	var all diff
	for _, x := range d {
		all |= x
	}
	return diffCase{name: name, reqs: []string{req}, diff: all}
}

func diffCases() []diffCase {
	var cs []diffCase
	for _, n := range []int{0, 1, 511, 512, 513, 2047, 2048} {
		cs = append(cs, one("size "+strconv.Itoa(n), get("/size/"+strconv.Itoa(n))))
		cs = append(cs, one("HEAD size "+strconv.Itoa(n), head("/size/"+strconv.Itoa(n))))
	}
	for _, n := range []int{2049, 4096, 65535, 65536, 65537, 1 << 20} {
		cs = append(cs, one("size "+strconv.Itoa(n), get("/size/"+strconv.Itoa(n)), diffFraming))
		cs = append(cs, one("pieces "+strconv.Itoa(n), get("/pieces/"+strconv.Itoa(n)), diffFraming))
	}
	for _, n := range []int{0, 1, 2048, 2049, 65536, 1 << 20} {
		cs = append(cs, one("content-length "+strconv.Itoa(n), get("/length/"+strconv.Itoa(n))))
	}
	cs = append(cs, one("HEAD content-length 100000", head("/length/100000")))
	cs = append(cs, one("HEAD pieces 100000", head("/pieces/100000"), diffFraming))
	for _, code := range []int{200, 201, 202, 204, 205, 206, 301, 304, 400, 401, 403, 404, 418, 429, 500, 503, 599, 999} {
		cs = append(cs, one("status "+strconv.Itoa(code), get("/status/"+strconv.Itoa(code))))
	}
	cs = append(cs, one("HEAD status 204", head("/status/204")), one("HEAD status 304", head("/status/304")),
		one("HEAD status 404", head("/status/404")), one("empty handler", get("/empty")),
		one("HEAD empty handler", head("/empty")))
	for _, kind := range []string{"html", "png", "text", "json", "gif", "binary", "xml", "none"} {
		cs = append(cs, one("sniff "+kind, get("/sniff/"+kind)))
	}
	for _, n := range []int{0, 1, 3} {
		cs = append(cs, one("flush "+strconv.Itoa(n), get("/flush/"+strconv.Itoa(n))))
	}
	cs = append(cs, one("HEAD flush", head("/flush/2")), one("flush, nothing written", get("/flush-empty")))
	for _, how := range []string{"declared", "prefix", "flushed"} {
		d := map[bool]diff{true: diffTrailer}[how == "prefix"]
		cs = append(cs, one("trailer "+how, get("/trailer/"+how), d))
		cs = append(cs, one("HEAD trailer "+how, head("/trailer/"+how), d))
	}
	cs = append(cs,
		one("echo GET", get("/echo?a=1&b=%20")),
		one("echo POST", post("/echo", "", "hello body")),
		one("echo POST empty", post("/echo", "", "")),
		one("echo chunked", chunkedPost("/echo", "", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")),
		one("echo chunked trailers", chunkedPost("/echo", "Trailer: X-T\r\n", "3\r\nabc\r\n0\r\nX-T: v\r\n\r\n")),
		one("echo chunked extension", chunkedPost("/echo", "", "3;ext=1\r\nabc\r\n0\r\n\r\n")),
		one("echo large body", post("/echo", "", strings.Repeat("x", 200<<10)), diffFraming),
		one("echo absolute form", "GET http://other.example/echo HTTP/1.1\r\nHost: other.example\r\n\r\n"),
		one("echo repeated fields", getH("/echo", "X-A: 1\r\nX-A: 2\r\n")),
		one("echo Connection: close", getH("/echo", "Connection: close\r\n")),
		one("echo HTTP/1.0", "GET /echo HTTP/1.0\r\n\r\n", diffVersion),
		one("echo HTTP/1.0 keep-alive", "GET /echo HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", diffVersion),
		one("ignored body", post("/ignore-body", "", "unread")),
		one("ignored large body", post("/ignore-body", "", strings.Repeat("u", 300<<10))),
		one("error", get("/error")),
		one("HEAD error", head("/error")),
		one("not found", get("/notfound")),
		one("no route", get("/no/such/route")),
		one("headers", get("/headers")),
		one("handler Connection: close", get("/close")),
		one("wrote too much", get("/wrote-too-much"), diffShort),
		one("readfrom", get("/readfrom"), diffFraming),
		one("interim 103", get("/interim")),
		one("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
		one("method not allowed by pattern", "DELETE /size/1 HTTP/1.1\r\nHost: a\r\n\r\n"),
	)
	for _, code := range []int{301, 302, 303, 307, 308} {
		cs = append(cs, one("redirect "+strconv.Itoa(code), get("/redirect/"+strconv.Itoa(code))))
	}
	cs = append(cs, one("HEAD redirect", head("/redirect/302")),
		one("redirect POST", post("/redirect/302", "", "x")))
	lm := diffModTime.Format(http.TimeFormat)
	for _, rg := range []string{"bytes=0-0", "bytes=0-9", "bytes=-5", "bytes=990-", "bytes=5-2000", "bytes=2000-",
		"bytes=0-1,5-6", "bytes=x", "items=0-1"} {
		cs = append(cs, one("content range "+rg, getH("/content", "Range: "+rg+"\r\n")))
	}
	cs = append(cs,
		one("content whole", get("/content")),
		one("HEAD content", head("/content")),
		one("content If-Modified-Since", getH("/content", "If-Modified-Since: "+lm+"\r\n")),
		one("content If-Unmodified-Since old", getH("/content", "If-Unmodified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n")),
		one("etag If-None-Match", getH("/etag", "If-None-Match: \"v1\"\r\n")),
		one("etag If-Match other", getH("/etag", "If-Match: \"v2\"\r\n")),
		one("etag If-Range match", getH("/etag", "If-Range: \"v1\"\r\nRange: bytes=0-3\r\n")),
		one("etag If-Range stale", getH("/etag", "If-Range: \"v0\"\r\nRange: bytes=0-3\r\n")),
	)
	for _, p := range []string{"/files/", "/files/index.html", "/files/a.txt", "/files/big.bin", "/files/sub",
		"/files/sub/", "/files/missing", "/files/../etc/passwd", "/files/sub/page.html"} {
		cs = append(cs, one("file server "+p, get(p)))
	}
	cs = append(cs, one("HEAD file", head("/files/big.bin")),
		one("file range", getH("/files/big.bin", "Range: bytes=100-199\r\n")))
	for _, when := range []string{"early", "written", "abort", "flushed"} {
		cs = append(cs, one("panic "+when, get("/panic/"+when)))
	}
	cs = append(cs,
		diffCase{name: "pipelined three", reqs: []string{get("/size/5") + head("/size/5") + get("/status/404")}},
		diffCase{name: "pipelined with a body", reqs: []string{post("/echo", "", "abc") + get("/size/3")}},
		diffCase{name: "pipelined after a panic", reqs: []string{get("/panic/early") + get("/size/3")}},
		diffCase{name: "Expect 100-continue, body after", reqs: []string{
			"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n", "body"}},
		diffCase{name: "Expect 100-continue, body ignored", reqs: []string{
			"POST /ignore-body HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"}},
		one("Expect 100-continue, body with the head",
			"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nbody", diffContinue),
		diffCase{name: "body in pieces", reqs: []string{post("/echo", "", "abcdef")[:40], post("/echo", "", "abcdef")[40:]}},
	)
	// Requests the strict parser refuses that net/http takes or refuses
	// otherwise.
	cs = append(cs,
		one("refused: bare LF", "GET /echo HTTP/1.1\nHost: a\n\n", diffRefused),
		one("refused: obs-fold", "GET /echo HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", diffRefused),
		one("refused: no Host", "GET /echo HTTP/1.1\r\n\r\n", diffRefused),
		one("refused: two Hosts", "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", diffRefused),
		one("refused: CL and TE", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", diffRefused),
		one("refused: bad CL", "POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n", diffRefused),
		one("refused: HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", diffRefused),
		one("refused: space before colon", "GET /echo HTTP/1.1\r\nHost: a\r\nX : 1\r\n\r\n", diffRefused),
	)
	return cs
}

// diffServers starts net/http's server and the adapter with the same
// handler and returns their addresses.
func diffServers(t *testing.T) (stdAddr, ourAddr string) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>index</p>\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a text file\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "big.bin"), bigBody(300<<10), 0o644))
	must(os.Mkdir(filepath.Join(dir, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "sub", "page.html"), []byte("<html>page</html>"), 0o644))
	for _, f := range []string{"index.html", "a.txt", "big.bin", "sub/page.html", "sub"} {
		must(os.Chtimes(filepath.Join(dir, f), diffModTime, diffModTime))
	}
	h := diffHandler(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	std := &http.Server{Handler: h, ErrorLog: nullLog()}
	go std.Serve(ln)
	t.Cleanup(func() { std.Close() })
	ts := startNetHTTP(t, httpcore.Config{}, h)
	return ln.Addr().String(), ts.addr
}

// exchange sends the parts of a request, 50 ms apart, half-closes and
// returns all the server wrote until it closed.
func exchange(t *testing.T, addr string, parts []string) []byte {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, c); close(done) }()
	for i, p := range parts {
		if i > 0 {
			time.Sleep(50 * time.Millisecond)
		}
		if _, err := io.WriteString(c, p); err != nil {
			break // the server may have closed already
		}
	}
	time.Sleep(20 * time.Millisecond) // let the handlers run before EOF cancels their contexts
	_ = c.(*net.TCPConn).CloseWrite()
	<-done
	return out.Bytes()
}

// A message is one response as parsed from the raw stream.
type message struct {
	status  string   // the status line
	fields  []string // header lines, sorted, Date values masked
	raw     []byte   // the body as sent, framing included
	body    []byte   // the body decoded
	trailer []string // trailer lines, sorted
}

var (
	dateValue = regexp.MustCompile(`(?m)^Date: .*$`)
	boundary  = regexp.MustCompile(`[0-9a-f]{20,}`)
)

// parseStream splits raw into messages, knowing the method of each
// request (HEAD responses have no body). It stops at what it cannot
// parse, returned as the rest.
func parseStream(raw []byte, methods []string) ([]message, []byte) {
	var msgs []message
	for len(raw) > 0 {
		end := bytes.Index(raw, []byte("\r\n\r\n"))
		if end < 0 {
			return msgs, raw
		}
		lines := strings.Split(string(raw[:end]), "\r\n")
		raw = raw[end+4:]
		m := message{status: lines[0]}
		for _, l := range lines[1:] {
			m.fields = append(m.fields, dateValue.ReplaceAllString(l, "Date: <date>"))
		}
		slices.Sort(m.fields)
		code, _ := strconv.Atoi(strings.SplitN(m.status+"   ", " ", 3)[1])
		method := "GET"
		if len(methods) > 0 {
			method = methods[0]
		}
		if code >= 200 && len(methods) > 0 {
			methods = methods[1:]
		}
		var ok bool
		raw, ok = m.readBody(raw, code, method)
		msgs = append(msgs, m)
		if !ok {
			return msgs, raw
		}
	}
	return msgs, nil
}

// readBody reads m's body from the start of raw and returns the rest.
func (m *message) readBody(raw []byte, code int, method string) ([]byte, bool) {
	field := func(name string) (string, bool) {
		for _, f := range m.fields {
			if k, v, _ := strings.Cut(f, ": "); strings.EqualFold(k, name) {
				return v, true
			}
		}
		return "", false
	}
	switch te, chunked := field("Transfer-Encoding"); {
	case method == "HEAD" || code < 200 || code == 204 || code == 304:
		return raw, true
	case chunked && te == "chunked":
		return m.readChunked(raw)
	default:
		cl, ok := field("Content-Length")
		if !ok {
			m.raw, m.body = raw, raw // until the close
			return nil, true
		}
		n, _ := strconv.Atoi(cl)
		n = min(n, len(raw))
		m.raw, m.body = raw[:n], raw[:n]
		return raw[n:], n == len(raw[:n])
	}
}

func (m *message) readChunked(raw []byte) ([]byte, bool) {
	start := raw
	for {
		i := bytes.Index(raw, []byte("\r\n"))
		if i < 0 {
			m.raw = start
			return nil, false
		}
		size, err := strconv.ParseInt(strings.SplitN(string(raw[:i]), ";", 2)[0], 16, 64)
		if err != nil {
			m.raw = start
			return nil, false
		}
		raw = raw[i+2:]
		if size == 0 {
			break
		}
		if int64(len(raw)) < size+2 {
			m.raw = start
			return nil, false
		}
		m.body = append(m.body, raw[:size]...)
		raw = raw[size+2:]
	}
	for {
		i := bytes.Index(raw, []byte("\r\n"))
		if i < 0 {
			m.raw = start
			return nil, false
		}
		line := string(raw[:i])
		raw = raw[i+2:]
		if line == "" {
			break
		}
		m.trailer = append(m.trailer, line)
	}
	slices.Sort(m.trailer)
	m.raw = start[:len(start)-len(raw)]
	return raw, true
}

// methodsOf returns the method of every request in the parts.
func methodsOf(parts []string) []string {
	var ms []string
	for _, l := range strings.Split(strings.Join(parts, ""), "\n") {
		for _, m := range []string{"GET ", "HEAD ", "POST ", "DELETE ", "OPTIONS "} {
			if strings.HasPrefix(l, m) && strings.Contains(l, "HTTP/") {
				ms = append(ms, strings.TrimSpace(m))
			}
		}
	}
	return ms
}

func TestDifferential(t *testing.T) {
	stdAddr, ourAddr := diffServers(t)
	cases := diffCases()
	if len(cases) < 100 {
		t.Fatalf("%d cases; the suite promises at least 100", len(cases))
	}
	var exact atomic.Int32
	t.Run("cases", func(t *testing.T) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				want := exchange(t, stdAddr, tc.reqs)
				got := exchange(t, ourAddr, tc.reqs)
				if compare(t, tc, want, got) {
					exact.Add(1)
				}
			})
		}
	})
	t.Logf("%d cases, %d byte for byte (but Date, boundaries and field order), %d with listed differences",
		len(cases), exact.Load(), int32(len(cases))-exact.Load())
}

// compare checks got against want, allowing the case's differences, and
// reports whether they matched fully.
func compare(t *testing.T, tc diffCase, want, got []byte) bool {
	t.Helper()
	methods := methodsOf(tc.reqs)
	wm, wrest := parseStream(boundary.ReplaceAll(want, []byte("<boundary>")), methods)
	gm, grest := parseStream(boundary.ReplaceAll(got, []byte("<boundary>")), methods)
	fail := func(what string, w, g any) {
		t.Fatalf("%s differs:\nnet/http: %q\nadapter:  %q\n\nnet/http stream:\n%.2000q\nadapter stream:\n%.2000q", what, w, g, want, got)
	}
	if tc.diff&diffRefused != 0 {
		// Whatever net/http does, the adapter refuses, once, and closes.
		if len(gm) != 1 || len(gm[0].status) < 10 || gm[0].status[9] < '4' || !slices.Contains(gm[0].fields, "Connection: close") {
			fail("refusal", wm, gm)
		}
		return false
	}
	if tc.diff&(diffTrailer|diffShort) != 0 {
		// The same status and body; the adapter sends the trailer.
		if len(wm) != 1 || len(gm) != 1 || wm[0].status != gm[0].status || !bytes.Equal(wm[0].body, gm[0].body) {
			fail("status or body", wm, gm)
		}
		if tc.diff&diffTrailer != 0 && methodsOf(tc.reqs)[0] == "GET" && !slices.Contains(gm[0].trailer, "X-Late: late") {
			fail("trailer", wm[0].trailer, gm[0].trailer)
		}
		return false
	}
	if tc.diff&diffContinue != 0 { // either may send it: compare the rest
		if len(wm) > 0 && strings.Contains(wm[0].status, " 100 ") {
			wm = wm[1:]
		}
		if len(gm) > 0 && strings.Contains(gm[0].status, " 100 ") {
			gm = gm[1:]
		}
	}
	if len(wm) != len(gm) {
		fail("number of responses", len(wm), len(gm))
	}
	if !bytes.Equal(wrest, grest) {
		fail("unparsed rest", wrest, grest)
	}
	for i := range wm {
		w, g := wm[i], gm[i]
		if tc.diff&diffVersion != 0 {
			w.status = strings.Replace(w.status, "HTTP/1.0", "HTTP/1.1", 1)
			g.fields = slices.DeleteFunc(g.fields, func(f string) bool { return f == "Connection: close" })
		}
		if tc.diff&diffFraming != 0 {
			framing := func(f string) bool {
				return strings.HasPrefix(f, "Content-Length:") || strings.HasPrefix(f, "Transfer-Encoding:")
			}
			w.fields, g.fields = slices.DeleteFunc(w.fields, framing), slices.DeleteFunc(g.fields, framing)
			w.raw, g.raw = nil, nil
		}
		switch {
		case w.status != g.status:
			fail("status line", w.status, g.status)
		case !slices.Equal(w.fields, g.fields):
			fail("header fields", w.fields, g.fields)
		case !bytes.Equal(w.raw, g.raw):
			fail("body as sent", w.raw, g.raw)
		case !bytes.Equal(w.body, g.body):
			fail("body", w.body, g.body)
		case !slices.Equal(w.trailer, g.trailer):
			fail("trailer", w.trailer, g.trailer)
		}
	}
	return tc.diff == 0
}
