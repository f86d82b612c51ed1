package nethttp

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/httpcore"
)

// bodyEcho answers with the request body, read as it streams in; one over
// MaxBodyBytes is answered with 413. GET /next answers "next".
func bodyEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/next" {
			io.WriteString(w, "next")
			return
		}
		b, err := io.ReadAll(r.Body)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.As(err, &tooLarge):
			http.Error(w, "too large", http.StatusRequestEntityTooLarge)
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			w.Write(b)
		}
	})
}

// TestLargeBodiesOverTCP sends large bodies in one write each, with a
// request pipelined after each, which must be served too.
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
		{"POST", 1<<20 + 1, false},
	}
	ts := startNetHTTP(t, httpcore.Config{}, bodyEcho())
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s-%d-chunked=%v", tc.method, tc.size, tc.chunked), func(t *testing.T) {
			c := ts.dial(t)
			body := string(bigBody(tc.size))
			head := tc.method + " / HTTP/1.1\r\nHost: a\r\n"
			if tc.chunked {
				var b strings.Builder
				for rest := body; rest != ""; {
					k := min(len(rest), 32<<10)
					b.WriteString(strconv.FormatInt(int64(k), 16) + "\r\n" + rest[:k] + "\r\n")
					rest = rest[k:]
				}
				head += "Transfer-Encoding: chunked\r\n\r\n" + b.String() + "0\r\n\r\n"
			} else {
				head += "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
			}
			go io.WriteString(c, head+"GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
			r := c.read(tc.method)
			if tc.size > 1<<20 {
				if r.StatusCode != 413 {
					t.Fatalf("status %d, want 413", r.StatusCode)
				}
				return
			}
			if r.StatusCode != 200 || r.body != body {
				t.Fatalf("status %d, body of %d bytes, want %d", r.StatusCode, len(r.body), len(body))
			}
			if r := c.read("GET"); r.StatusCode != 200 || r.body != "next" {
				t.Fatalf("pipelined request: %d %q", r.StatusCode, r.body)
			}
		})
	}
}
