package nethttp

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/clusterd/clusterd/httpcore"
)

// TestPlainTarget checks that a target parseTarget takes without parsing
// gives the URL url.ParseRequestURI gives.
func TestPlainTarget(t *testing.T) {
	targets := []string{"/", "/a/b", "/a?x=1", "/a?", "/a??", "/?", "//x", "///x", "/a%20b", "/a b",
		"/a?b c", "/a?x\x7f", "/a\x01", "/a#f", "/a?x#f", "/~u/-_.", "/$&+,/:;=@", "/!*'()", "/é", "*", "x"}
	for c := 0; c < 256; c++ {
		targets = append(targets, "/p"+string(rune(c)), "/p?q"+string([]byte{byte(c)}), "/"+string([]byte{byte(c)}))
	}
	plain := 0
	for _, target := range targets {
		var u url.URL
		got, err := parseTarget("GET", target, &u)
		want, werr := url.ParseRequestURI(target)
		if (err == nil) != (werr == nil) || err == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%q: got %#v, %v; want %#v, %v", target, got, err, want, werr)
		}
		if got == &u {
			plain++
		}
	}
	if plain == 0 {
		t.Fatal("no target was taken as plain")
	}
}

// TestRetainedRequestAndFreshHeader checks that a request kept after its
// handler returned is not reused by later ones, and that every handler
// starts with an empty response header map, with writers pooled.
func TestRetainedRequestAndFreshHeader(t *testing.T) {
	var (
		mu   sync.Mutex
		kept []*http.Request
	)
	ts := startNetHTTP(t, httpcore.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		kept = append(kept, r) // one connection: handlers run one after another
		mu.Unlock()
		if n := len(w.Header()); n != 0 {
			t.Errorf("%s: response header has %d fields on entry", r.URL.Path, n)
		}
		w.Header().Set("X-Path", r.URL.Path)
		w.Header().Add("Trailer", "X-T")
		w.Header().Set(http.TrailerPrefix+"X-U", "u")
		_, _ = io.WriteString(w, r.URL.Path)
		w.Header().Set("X-T", "t")
	}))
	// More fields than the job keeps values of, one of them repeated.
	const moreFields = "X-R: 1\r\nX-B: b\r\nX-R: 2\r\nx-c: c\r\nX-D: d\r\nX-R: 3\r\nX-E: e\r\n"
	c := ts.dial(t)
	const n = 20
	for i := range n {
		path := fmt.Sprintf("/p%d", i)
		c.send("GET " + path + "?q=" + path + " HTTP/1.1\r\nHost: h" + path[1:] + "\r\nX-A: " + path + "\r\n" + moreFields + "\r\n")
		resp := c.read("GET")
		if resp.body != path || resp.Header.Get("X-Path") != path || resp.Trailer.Get("X-T") != "t" || resp.Trailer.Get("X-U") != "u" {
			t.Fatalf("%s: body %q, X-Path %q, trailer %v", path, resp.body, resp.Header.Get("X-Path"), resp.Trailer)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for i, r := range kept {
		path := fmt.Sprintf("/p%d", i)
		if r.URL.Path != path || r.URL.RawQuery != "q="+path || r.Host != "h"+path[1:] || r.Header.Get("X-A") != path || len(r.Header) != 6 ||
			!reflect.DeepEqual(r.Header["X-R"], []string{"1", "2", "3"}) || r.Header.Get("X-E") != "e" {
			t.Errorf("kept request %d: URL %v, Host %q, Header %v", i, r.URL, r.Host, r.Header)
		}
	}
}

func TestIsHostOrTE(t *testing.T) {
	for _, name := range []string{"Host", "host", "HOST", "hOsT", "Hos", "Hostx", "Gost", "Transfer-Encoding",
		"transfer-encoding", "TRANSFER-ENCODING", "Transfer_Encoding", "Transfer-Encodinh", "Content-Length"} {
		want := strings.EqualFold(name, "Host") || strings.EqualFold(name, "Transfer-Encoding")
		if got := isHostOrTE(name); got != want {
			t.Errorf("isHostOrTE(%q) = %v", name, got)
		}
	}
}

// TestRequestContextInPlace checks that the request gets its context
// without a copy on this Go release, and that it is the job's.
func TestRequestContextInPlace(t *testing.T) {
	if !reqCtx.ok {
		t.Fatal("http.Request has no ctx field of type context.Context: requests are copied by WithContext")
	}
	got := make(chan bool, 1)
	ts := startNetHTTP(t, httpcore.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, isJob := r.Context().(*reqContext)
		got <- isJob && r.Context().Err() == nil
	}))
	c := ts.dial(t)
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	c.read("GET")
	if !<-got {
		t.Fatal("the request's context is not the job's")
	}
}
