package nethttp

import (
	"github.com/clusterd/clusterd/httpcore"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// reqInfo is what the /req handler reports of the *http.Request it got.
type reqInfo struct {
	Method, Path, RawQuery, Host, URLHost, RequestURI, Proto, RemoteAddr, PathValue, Body string
	ProtoMinor                                                                            int
	ContentLength                                                                         int64
	TransferEncoding                                                                      []string
	Header, Trailer                                                                       http.Header
	Close, TLS                                                                            bool
	BodyErr                                                                               string
}

func reqInfoHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/req/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		info := reqInfo{
			Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Host: r.Host, URLHost: r.URL.Host,
			RequestURI: r.RequestURI, Proto: r.Proto, ProtoMinor: r.ProtoMinor, RemoteAddr: r.RemoteAddr,
			PathValue: r.PathValue("rest"), Body: string(body), ContentLength: r.ContentLength,
			TransferEncoding: r.TransferEncoding, Header: r.Header, Trailer: r.Trailer, Close: r.Close,
			TLS: r.TLS != nil,
		}
		if err != nil {
			info.BodyErr = err.Error()
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(info)
	})
	return mux
}

func TestNetHTTPRequest(t *testing.T) {
	ts := startNetHTTP(t, httpcore.Config{}, reqInfoHandler())
	c := ts.dial(t)
	local := c.LocalAddr().String()
	tests := []struct {
		name, req string
		check     func(i reqInfo) bool
	}{
		{"content-length body",
			"POST /req/a%20b?x=1&y=2 HTTP/1.1\r\nHost: example.com:8080\r\nx-lower: v1\r\nX-Lower: v2\r\nContent-Length: 3\r\n\r\nabc",
			func(i reqInfo) bool {
				return i.Method == "POST" && i.Path == "/req/a b" && i.RawQuery == "x=1&y=2" &&
					i.Host == "example.com:8080" && i.RequestURI == "/req/a%20b?x=1&y=2" && i.Proto == "HTTP/1.1" &&
					i.ProtoMinor == 1 && i.RemoteAddr == local && i.PathValue == "a b" && i.Body == "abc" &&
					i.ContentLength == 3 && strings.Join(i.Header["X-Lower"], ",") == "v1,v2" &&
					i.Header["Host"] == nil && !i.Close && !i.TLS
			}},
		{"chunked body with trailers",
			"POST /req/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
				"3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 5\r\nX-Other: o\r\n\r\n",
			func(i reqInfo) bool {
				return i.Body == "abcde" && i.ContentLength == -1 && strings.Join(i.TransferEncoding, ",") == "chunked" &&
					i.Header["Transfer-Encoding"] == nil && i.Trailer.Get("X-Sum") == "5" && i.Trailer.Get("X-Other") == "o"
			}},
		{"no body",
			"GET /req/d HTTP/1.1\r\nHost: a\r\n\r\n",
			func(i reqInfo) bool {
				return i.Method == "GET" && i.Body == "" && i.ContentLength == 0 && i.BodyErr == ""
			}},
		{"absolute form",
			"GET http://other.example/req/e?q HTTP/1.1\r\nHost: other.example\r\n\r\n",
			func(i reqInfo) bool {
				return i.Host == "other.example" && i.URLHost == "other.example" && i.Path == "/req/e"
			}},
		{"HTTP/1.0 closes",
			"GET /req/f HTTP/1.0\r\n\r\n",
			func(i reqInfo) bool { return i.ProtoMinor == 0 && i.Proto == "HTTP/1.0" && i.Close && i.Host == "" }},
	}
	for _, tt := range tests {
		c.send(tt.req)
		r := c.read("GET")
		var info reqInfo
		if err := json.Unmarshal([]byte(r.body), &info); err != nil || r.StatusCode != 200 || !tt.check(info) {
			t.Fatalf("%s: status %d, got %s", tt.name, r.StatusCode, r.body)
		}
	}
	c.expectClosed() // after the HTTP/1.0 request
}

func TestNetHTTPResponses(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html><body>hi</body></html>")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		for range 10 {
			w.Write(bigBody(20 << 10))
		}
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "5")
		_, err := io.WriteString(w, "toolong")
		w.Header().Set("X-Late", "ignored") // after the head: dropped
		if !errors.Is(err, http.ErrContentLength) {
			panic(err)
		}
	})
	mux.HandleFunc("/trailers", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Sum")
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
		w.Header().Set(http.TrailerPrefix+"X-Late", "yes")
	})
	mux.HandleFunc("/nobody", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := io.WriteString(w, "x"); !errors.Is(err, http.ErrBodyNotAllowed) {
			panic(err)
		}
	})
	mux.HandleFunc("/early-hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</style.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		io.WriteString(w, "final")
	})
	ts := startNetHTTP(t, httpcore.Config{}, mux)
	client := ts.httpClient(t)

	resp, body := httpGet(t, client, ts.url("/html"))
	if resp.Header.Get("Content-Type") != "text/html; charset=utf-8" || resp.ContentLength != int64(len(body)) {
		t.Errorf("/html: type %q length %d", resp.Header.Get("Content-Type"), resp.ContentLength)
	}
	if resp, body = httpGet(t, client, ts.url("/empty")); resp.StatusCode != 200 || resp.ContentLength != 0 || body != "" {
		t.Errorf("/empty: %d %d %q", resp.StatusCode, resp.ContentLength, body)
	}
	resp, body = httpGet(t, client, ts.url("/big"))
	if strings.Join(resp.TransferEncoding, ",") != "chunked" || len(body) != 200<<10 {
		t.Errorf("/big: encoding %v, %d bytes", resp.TransferEncoding, len(body))
	}
	resp, body = httpGet(t, client, ts.url("/length"))
	if body != "" || resp.Header.Get("X-Late") != "" { // as net/http, nothing of a write past the length
		t.Errorf("/length: %q %v", body, resp.Header)
	}
	resp, body = httpGet(t, client, ts.url("/trailers"))
	if body != "body" || resp.Trailer.Get("X-Sum") != "42" || resp.Trailer.Get("X-Late") != "yes" {
		t.Errorf("/trailers: %q trailer %v", body, resp.Trailer)
	}
	if resp, _ = httpGet(t, client, ts.url("/nobody")); resp.StatusCode != 204 {
		t.Errorf("/nobody: %d", resp.StatusCode)
	}

	c := ts.dial(t)
	c.send("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n")
	if r := c.read("OPTIONS"); r.StatusCode != 200 || r.ContentLength != 0 {
		t.Fatalf("OPTIONS *: %d, length %d", r.StatusCode, r.ContentLength)
	}
	c.send("GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n")
	if head := c.readHead(); !strings.HasPrefix(head, "HTTP/1.1 103 Early Hints\r\n") || !strings.Contains(head, "Link: </style.css>") {
		t.Fatalf("interim response %q", head)
	}
	if r := c.read("GET"); r.StatusCode != 200 || r.body != "final" || r.Header.Get("Link") == "" {
		t.Fatalf("final response %d %q", r.StatusCode, r.body)
	}
}

func TestNetHTTPFileServer(t *testing.T) {
	dir := t.TempDir()
	big := bigBody(3 << 20)
	files := map[string][]byte{
		"index.html": []byte("<html>index</html>"), "a.txt": []byte("hello, file server"), "big.bin": big,
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir(dir))))
	ts := startNetHTTP(t, httpcore.Config{}, mux)
	client := ts.httpClient(t)

	resp, body := httpGet(t, client, ts.url("/static/a.txt"))
	if resp.StatusCode != 200 || body != "hello, file server" || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("a.txt: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if resp, body = httpGet(t, client, ts.url("/static/")); body != "<html>index</html>" {
		t.Fatalf("index: %d %q", resp.StatusCode, body)
	}
	if resp, body = httpGet(t, client, ts.url("/static/big.bin")); body != string(big) || resp.ContentLength != int64(len(big)) {
		t.Fatalf("big.bin: %d bytes, length %d", len(body), resp.ContentLength)
	}
	if resp, _ = httpGet(t, client, ts.url("/static/missing")); resp.StatusCode != 404 {
		t.Fatalf("missing: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", ts.url("/static/big.bin"), nil)
	req.Header.Set("Range", "bytes=1000-1999")
	if resp, body = do(t, client, req); resp.StatusCode != 206 || body != string(big[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	req, _ = http.NewRequest("GET", ts.url("/static/a.txt"), nil)
	req.Header.Set("If-Modified-Since", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
	if resp, _ = do(t, client, req); resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
	req, _ = http.NewRequest("HEAD", ts.url("/static/big.bin"), nil)
	if resp, body = do(t, client, req); resp.ContentLength != int64(len(big)) || body != "" {
		t.Fatalf("HEAD: length %d, body %d bytes", resp.ContentLength, len(body))
	}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestNetHTTPMaxBody(t *testing.T) {
	called := make(chan string, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			called <- fmt.Sprint("limit ", tooLarge.Limit)
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
			return
		}
		called <- fmt.Sprint(err)
	})
	ts := startNetHTTP(t, httpcore.Config{MaxBodyBytes: 1000}, h)
	c := ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2000\r\n\r\n")
	if r := c.read("POST"); r.StatusCode != 413 || len(called) != 0 {
		t.Fatalf("declared too large: %d, handler called %d times", r.StatusCode, len(called))
	}
	c = ts.dial(t)
	c.send("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n" + strings.Repeat("x", 1000) + "\r\n1\r\nx\r\n")
	if r := c.read("POST"); r.StatusCode != 413 || !r.Close {
		t.Fatalf("chunked too large: %d close %v", r.StatusCode, r.Close)
	}
	if got := <-called; got != "limit 1000" {
		t.Fatalf("handler saw %s", got)
	}
	c.expectClosed()
}

func TestNetHTTPBodyTimeout(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); errors.Is(err, os.ErrDeadlineExceeded) {
			http.Error(w, "slow body", http.StatusRequestTimeout)
		}
	})
	ts := startNetHTTP(t, httpcore.Config{RequestTimeout: 300 * time.Millisecond}, h)
	c := ts.dial(t)
	start := time.Now()
	c.send("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
	if r := c.read("POST"); r.StatusCode != 408 || !r.Close {
		t.Fatalf("%d close %v", r.StatusCode, r.Close)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 2*time.Second {
		t.Fatalf("timed out after %v", d)
	}
	c.expectClosed()
}
