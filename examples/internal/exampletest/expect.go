package exampletest

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// An Exchange is a request and what its response must be: the status,
// and a body containing Body.
type Exchange struct {
	Method, Path, Send string
	Status             int
	Body               string
}

// Expect makes each request against base and checks its response.
func Expect(t *testing.T, base string, exchanges []Exchange) {
	t.Helper()
	c := Client(t)
	for _, x := range exchanges {
		req, err := http.NewRequest(x.Method, base+x.Path, strings.NewReader(x.Send))
		if err != nil {
			t.Fatal(err)
		}
		if x.Send != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", x.Method, x.Path, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != x.Status || !strings.Contains(string(b), x.Body) {
			t.Errorf("%s %s: %d %q (%v); want %d with %q", x.Method, x.Path, resp.StatusCode, b, err, x.Status, x.Body)
		}
	}
}
