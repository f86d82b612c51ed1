package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/examples/internal/exampletest"
)

// With envMain set, the test binary is the example program: the master it
// becomes re-executes this binary, with the same variable, for its workers.
const envMain = "CLUSTERD_ROUTER_EXAMPLE_MAIN"

func TestMain(m *testing.M) {
	exampletest.RunMain(envMain, main)
	os.Exit(m.Run())
}

func TestRouterUnderClusterd(t *testing.T) {
	e := exampletest.StartCluster(t, envMain, 2)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}

	if status, body := fetch(t, client, "GET", e.URL("/"), ""); status != 200 || !strings.HasPrefix(body, "hello from worker ") {
		t.Errorf("GET /: %d %q", status, body)
	}
	var user struct {
		ID     int    `json:"id"`
		Name   string `json:"name"`
		Worker int    `json:"worker"`
	}
	status, body := fetch(t, client, "GET", e.URL("/users/42"), "")
	if err := json.Unmarshal([]byte(body), &user); err != nil || status != 200 || user.ID != 42 || !e.IsWorker(user.Worker) {
		t.Errorf("GET /users/42: %d %q, not from a worker", status, body)
	}
	if status, body := fetch(t, client, "GET", e.URL("/users/abc"), ""); status != 400 || !strings.Contains(body, "number") {
		t.Errorf("GET /users/abc: %d %q", status, body)
	}
	if status, body := fetch(t, client, "POST", e.URL("/users/7/notes"), "remember the milk"); status != 201 ||
		!strings.Contains(body, `"note":"remember the milk"`) || !strings.Contains(body, `"bytes":17`) {
		t.Errorf("POST /users/7/notes: %d %q", status, body)
	}
	if status, _ := fetch(t, client, "POST", e.URL("/users/7/notes"), strings.Repeat("x", maxNote+1)); status != 413 {
		t.Errorf("POST of a large note: %d", status)
	}
	if status, _ := fetch(t, client, "GET", e.URL("/panic"), ""); status != 500 {
		t.Errorf("GET /panic: %d", status)
	}
	if status, _ := fetch(t, client, "GET", e.URL("/no/such/route"), ""); status != 404 {
		t.Errorf("GET /no/such/route: %d", status)
	}
	checkStream(t, client, e.URL("/stream?n=4"))

	e.Stop(10 * time.Second)
	if log := e.Log(); !strings.Contains(log, "GET /users/42 200") {
		t.Errorf("no request log line forwarded by the master:\n%s", log)
	}
}

func fetch(t *testing.T, c *http.Client, method, url, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, url, err)
	}
	return resp.StatusCode, string(b)
}

// checkStream reads the streamed lines as they come: the first must arrive
// well before the last, which is written 150 ms later.
func checkStream(t *testing.T, c *http.Client, url string) {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if strings.Join(resp.TransferEncoding, ",") != "chunked" {
		t.Errorf("stream: Transfer-Encoding %v", resp.TransferEncoding)
	}
	br := bufio.NewReader(resp.Body)
	var at []time.Duration
	for i := 1; i <= 4; i++ {
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, fmt.Sprintf("line %d of 4 ", i)) {
			t.Fatalf("stream line %d: %q %v", i, line, err)
		}
		at = append(at, time.Since(start))
	}
	if at[3]-at[0] < 100*time.Millisecond {
		t.Errorf("stream lines arrived at %v: not as they were written", at)
	}
}
