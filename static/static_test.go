package static

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testserve"
)

// tree makes a document root with files, directories and symlinks, one
// of which points outside it.
func tree(t *testing.T) (string, []byte) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "www")
	big := make([]byte, 1<<20)
	_, _ = rand.Read(big)
	files := map[string]string{
		"index.html":     "<h1>home</h1>\n",
		"a.txt":          "hello, file\n",
		"style.css":      "body{}\n",
		"sub/index.html": "<h1>sub</h1>\n",
		"empty/.keep":    "",
		"my file.txt":    "spaced\n",
		"big.bin":        string(big),
	}
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(base, "secret.txt")
	if err := os.WriteFile(secret, []byte("top secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"link-in":     "a.txt",
		"link-out":    secret,
		"link-up":     "../secret.txt",
		"dir-out":     base,
		"sub/link-up": "../../secret.txt",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root, big
}

// serve runs h on a loopback listener and returns its base URL.
func serve(t *testing.T, h httpcore.Handler) string {
	t.Helper()
	addr := testserve.Loop(t, httpcore.NewServer(httpcore.Config{}, h))
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections) // before the shutdown
	return "http://" + addr
}

// serveTree serves a new tree and returns its URL and big.bin's content.
func serveTree(t *testing.T) (string, []byte) {
	t.Helper()
	root, big := tree(t)
	h, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return serve(t, h), big
}

type reply struct {
	code int
	hdr  http.Header
	body string
}

func do(t *testing.T, method, url string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

// rawGet sends a request target exactly as given (no client-side cleaning).
func rawGet(t *testing.T, base, target string) int {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	f := strings.Fields(string(b))
	if len(f) < 2 {
		t.Fatalf("%s: no response: %q", target, b)
	}
	code, _ := strconv.Atoi(f[1])
	return code
}

func TestServeFiles(t *testing.T) {
	base, _ := serveTree(t)
	tests := []struct {
		method, path string
		code         int
		ctype, body  string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8", "<h1>home</h1>\n"},
		{"GET", "/index.html", 200, "text/html; charset=utf-8", "<h1>home</h1>\n"},
		{"GET", "/a.txt", 200, "text/plain; charset=utf-8", "hello, file\n"},
		{"GET", "/style.css", 200, "text/css; charset=utf-8", "body{}\n"},
		{"GET", "/my%20file.txt", 200, "text/plain; charset=utf-8", "spaced\n"},
		{"HEAD", "/a.txt", 200, "text/plain; charset=utf-8", ""},
		{"GET", "/sub/", 200, "text/html; charset=utf-8", "<h1>sub</h1>\n"},
		{"GET", "/link-in", 200, "application/octet-stream", "hello, file\n"},
		{"GET", "/sub", 301, "", ""},
		{"GET", "/empty/", 404, "", ""},
		{"GET", "/missing.txt", 404, "", ""},
		{"GET", "/a.txt/", 404, "", ""},
		{"POST", "/a.txt", 405, "", ""},
	}
	for _, tt := range tests {
		r := do(t, tt.method, base+tt.path)
		if r.code != tt.code {
			t.Errorf("%s %s: %d, want %d (%q)", tt.method, tt.path, r.code, tt.code, r.body)
			continue
		}
		if tt.code == 200 && (r.body != tt.body || r.hdr.Get("Content-Type") != tt.ctype) {
			t.Errorf("%s %s: %q %q, want %q %q", tt.method, tt.path, r.hdr.Get("Content-Type"), r.body, tt.ctype, tt.body)
		}
	}
	if r := do(t, "HEAD", base+"/a.txt"); r.hdr.Get("Content-Length") != "12" {
		t.Errorf("HEAD Content-Length = %q, want 12", r.hdr.Get("Content-Length"))
	}
	if r := do(t, "GET", base+"/sub"); r.hdr.Get("Location") != "/sub/" {
		t.Errorf("redirect to %q", r.hdr.Get("Location"))
	}
}

// TestNoWayOut: nothing outside the root can be read, however it is named.
func TestNoWayOut(t *testing.T) {
	base, _ := serveTree(t)
	for _, target := range []string{
		"/../secret.txt",
		"/sub/../../secret.txt",
		"/%2e%2e/secret.txt",
		"/sub/%2E%2E/%2e%2e/secret.txt",
		"/..%2fsecret.txt",
		"/sub%2f..%2f..%2fsecret.txt",
		"/..%5csecret.txt",
		"/a.txt%00.html",
		"/link-out",
		"/link-up",
		"/sub/link-up",
		"/dir-out/secret.txt",
		"/dir-out/www/a.txt",
	} {
		code := rawGet(t, base, target)
		if code != 403 && code != 404 && code != 400 {
			t.Errorf("GET %s: %d, want 403, 404 or 400", target, code)
		}
	}
}

func TestConditionalAndRanges(t *testing.T) {
	base, big := serveTree(t)
	first := do(t, "GET", base+"/big.bin")
	etag, lm := first.hdr.Get("ETag"), first.hdr.Get("Last-Modified")
	if first.code != 200 || first.body != string(big) || etag == "" || lm == "" {
		t.Fatalf("GET big.bin: %d, %d bytes, etag %q, last-modified %q", first.code, len(first.body), etag, lm)
	}
	size := strconv.Itoa(len(big))
	tests := []struct {
		name   string
		hdr    []string
		code   int
		crange string
		body   []byte
	}{
		{"etag match", []string{"If-None-Match", etag}, 304, "", nil},
		{"weak etag match", []string{"If-None-Match", `"x", W/` + etag}, 304, "", nil},
		{"etag star", []string{"If-None-Match", "*"}, 304, "", nil},
		{"etag differs", []string{"If-None-Match", `"other"`}, 200, "", big},
		{"not modified since", []string{"If-Modified-Since", lm}, 304, "", nil},
		{"modified since", []string{"If-Modified-Since", "Mon, 02 Jan 2006 15:04:05 GMT"}, 200, "", big},
		{"first bytes", []string{"Range", "bytes=0-9"}, 206, "bytes 0-9/" + size, big[:10]},
		{"middle", []string{"Range", "bytes=1000-1999"}, 206, "bytes 1000-1999/" + size, big[1000:2000]},
		{"open end", []string{"Range", "bytes=1048500-"}, 206, "bytes 1048500-1048575/" + size, big[1048500:]},
		{"suffix", []string{"Range", "bytes=-5"}, 206, "bytes 1048571-1048575/" + size, big[len(big)-5:]},
		{"end past size", []string{"Range", "bytes=1048570-9999999"}, 206, "bytes 1048570-1048575/" + size, big[1048570:]},
		{"unsatisfiable", []string{"Range", "bytes=9999999-"}, 416, "bytes */" + size, nil},
		{"multi range ignored", []string{"Range", "bytes=0-1,5-6"}, 200, "", big},
		{"malformed ignored", []string{"Range", "bytes=x-y"}, 200, "", big},
		{"if-range matches", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, "bytes 0-9/" + size, big[:10]},
		{"if-range stale", []string{"Range", "bytes=0-9", "If-Range", `"old"`}, 200, "", big},
	}
	for _, tt := range tests {
		r := do(t, "GET", base+"/big.bin", tt.hdr...)
		if r.code != tt.code || r.hdr.Get("Content-Range") != tt.crange {
			t.Errorf("%s: %d %q, want %d %q", tt.name, r.code, r.hdr.Get("Content-Range"), tt.code, tt.crange)
			continue
		}
		if tt.body != nil && !bytes.Equal([]byte(r.body), tt.body) {
			t.Errorf("%s: body of %d bytes differs from the %d expected", tt.name, len(r.body), len(tt.body))
		}
		if tt.code == 304 && (r.body != "" || r.hdr.Get("ETag") != etag) {
			t.Errorf("%s: 304 with body %q, etag %q", tt.name, r.body, r.hdr.Get("ETag"))
		}
	}
}

func TestParseRange(t *testing.T) {
	tests := []struct {
		h          string
		start, end int64
		ok         bool
	}{
		{"bytes=0-0", 0, 0, true},
		{"bytes=0-", 0, 99, true},
		{"bytes=-100", 0, 99, true},
		{"bytes=-200", 0, 99, true},
		{"bytes=-0", -1, 0, true},
		{"bytes=100-", -1, 0, true},
		{"bytes=5-1", 0, 0, false},
		{"bytes=+1-2", 0, 0, false},
		{"bytes=1-+2", 0, 0, false},
		{"items=0-1", 0, 0, false},
		{"bytes=0-1,3-4", 0, 0, false},
		{"bytes=1", 0, 0, false},
		{"bytes=99999999999999999999-", 0, 0, false},
	}
	for _, tt := range tests {
		s, e, ok := parseRange(tt.h, 100)
		if ok != tt.ok || ok && (s != tt.start || s >= 0 && e != tt.end) {
			t.Errorf("parseRange(%q) = %d, %d, %v; want %d, %d, %v", tt.h, s, e, ok, tt.start, tt.end, tt.ok)
		}
	}
}

func TestNewRejectsNonDirectory(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(f, nil, 0o644)
	for _, dir := range []string{f, filepath.Join(t.TempDir(), "missing")} {
		if h, err := New(dir); err == nil {
			h.Close()
			t.Errorf("New(%q) accepted a non-directory", dir)
		}
	}
}

// TestRequestBodies: a request body of any size up to the limit is read
// and ignored (GET) or refused with 405 (POST), and the connection serves
// the next request; one over the limit gets 413 and the connection closes.
// Sizes are at the engine's read buffer and body limit, and the requests
// arrive whole and in random pieces.
func TestRequestBodies(t *testing.T) {
	base, _ := serveTree(t)
	const maxBody = httpcore.DefaultMaxBodyBytes
	type reqCase struct {
		method  string
		size    int
		chunked bool
		code    int
	}
	cases := []reqCase{
		{"GET", 300_000, false, 200},
		{"GET", 480_000, true, 200},
		{"GET", maxBody, true, 200},
		{"GET", maxBody + 1, false, 413},
		{"POST", 200_000, false, 405},
		{"POST", 1_000_000, false, 405},
	}
	for _, n := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 128 << 10, 640 << 10, maxBody} {
		cases = append(cases, reqCase{"GET", n, false, 200})
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("random pieces: seed %d", seed)
	rng := mrand.New(mrand.NewPCG(seed, 1))
	for _, tc := range cases {
		for _, split := range []bool{false, true} {
			body := bytes.Repeat([]byte("x"), tc.size)
			framing := "Content-Length: " + strconv.Itoa(tc.size) + "\r\n\r\n"
			if tc.chunked {
				framing = "Transfer-Encoding: chunked\r\n\r\n" + strconv.FormatInt(int64(tc.size), 16) + "\r\n"
				body = append(body, "\r\n0\r\n\r\n"...)
			}
			req := tc.method + " /a.txt HTTP/1.1\r\nHost: x\r\n" + framing + string(body) + "GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
			pieces := []string{req}
			if split {
				pieces = nil
				for rest := req; rest != ""; {
					k := min(len(rest), 1+rng.IntN(70_000))
					pieces, rest = append(pieces, rest[:k]), rest[k:]
				}
			}
			checkBodyRequest(t, base, pieces, fmt.Sprintf("%s with %d bytes, chunked %v, split %v", tc.method, tc.size, tc.chunked, split), tc.code)
		}
	}
}

// checkBodyRequest sends a request in pieces and a GET after it, and
// checks the first response's status, and that the GET is answered unless
// the first was a 413, after which the connection must close.
func checkBodyRequest(t *testing.T, base string, pieces []string, name string, code int) {
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		for _, p := range pieces {
			if _, err := io.WriteString(c, p); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReader(c)
	for i, want := range []int{code, 200} {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: response %d: %v", name, i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want || want == 200 && string(b) != "hello, file\n" {
			t.Fatalf("%s: response %d: %d %q, want %d", name, i, resp.StatusCode, b, want)
		}
		if want == http.StatusRequestEntityTooLarge {
			if n, err := br.Read(make([]byte, 1)); err == nil {
				t.Fatalf("%s: %d bytes after a 413", name, n)
			}
			return
		}
	}
}

// TestRedirectStaysOnSite: the redirect that adds a directory's slash is
// a path on this site, however the request names the directory; never a
// scheme-relative ("//host") or absolute URL.
func TestRedirectStaysOnSite(t *testing.T) {
	root, _ := tree(t)
	for _, dir := range []string{"evil.com", `\evil.com`, "ev il", "a?b#c", "http:"} {
		if err := os.MkdirAll(filepath.Join(root, dir, "in"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h, err := New(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	base := serve(t, h)
	for _, tc := range []struct{ target, want string }{
		{"/sub", "/sub/"},
		{"/sub?x=1", "/sub/?x=1"},
		{"//evil.com", "/evil.com/"},
		{"///evil.com", "/evil.com/"},
		{"//evil.com?x=//y", "/evil.com/?x=//y"},
		{"/%2Fevil.com", ""}, // an encoded slash is refused
		{`/\evil.com`, "/%5Cevil.com/"},
		{`//\evil.com`, "/%5Cevil.com/"},
		{"/%5cevil.com", ""}, // an encoded backslash is refused
		{"//ev%20il", "/ev%20il/"},
		{"/a%3Fb%23c", "/a%3Fb%23c/"},
		{"//http:", "/http:/"},
		{"//evil.com//in", "/evil.com/in/"},
		{"/.//evil.com", "/evil.com/"},
	} {
		resp := rawResponse(t, base, tc.target)
		loc := resp.Header.Get("Location")
		if tc.want == "" {
			if resp.StatusCode/100 == 3 || loc != "" {
				t.Errorf("GET %s: %d Location %q, want no redirect", tc.target, resp.StatusCode, loc)
			}
			continue
		}
		if resp.StatusCode != 301 || loc != tc.want {
			t.Errorf("GET %s: %d Location %q, want 301 %q", tc.target, resp.StatusCode, loc, tc.want)
		}
		if u, err := url.Parse(loc); err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
			t.Errorf("GET %s: Location %q leaves the site", tc.target, loc)
		}
	}
}

// rawResponse sends a request target exactly as given and reads the head.
func rawResponse(t *testing.T, base, target string) *http.Response {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	_ = resp.Body.Close()
	return resp
}
