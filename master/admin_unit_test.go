package master

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// get fetches url and returns its status and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestHealthzReadyzStates: /healthz follows the supervisor's snapshot
// (stale: 503), /readyz the pool (no worker ready, stopping, handed over).
func TestHealthzReadyzStates(t *testing.T) {
	m, ws := fakePool(2)
	call := func(h http.HandlerFunc) (int, string) {
		rec := httptest.NewRecorder()
		h(rec, httptest.NewRequest("GET", "/", nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	steps := []struct {
		name   string
		setup  func()
		health int
		ready  int
		body   string // /readyz's
	}{
		{"nothing published", func() {}, 503, 503, "no worker ready"},
		{"two workers ready", m.publish, 200, 200, "ok"},
		{"none ready", func() {
			for _, w := range ws {
				w.state = Starting
			}
			m.publish()
		}, 200, 503, "no worker ready"},
		{"one ready again", func() { ws[1].state = Ready; m.publish() }, 200, 200, "ok"},
		{"a stale snapshot", func() {
			s := *m.stats.latest.Load()
			s.taken = time.Now().Add(-2 * staleAfter)
			m.stats.latest.Store(&s)
		}, 503, 200, "ok"},
		{"stopping", func() { m.publish(); m.stats.shutting.Store(true) }, 200, 503, "shutting down"},
		{"workers draining", func() { m.stats.shutting.Store(false); m.stopping = true; m.publish() }, 200, 503, "no worker ready"},
		{"handed over to a new master", func() { m.stats.handedOver.Store(true) }, 200, 200, "ok"},
	}
	for _, s := range steps {
		s.setup()
		if code, _ := call(m.healthz); code != s.health {
			t.Errorf("%s: /healthz %d, want %d", s.name, code, s.health)
		}
		if code, body := call(m.readyz); code != s.ready || body != s.body {
			t.Errorf("%s: /readyz %d %q, want %d %q", s.name, code, body, s.ready, s.body)
		}
	}
}

// TestAdminServer: the admin listener answers /metrics with the pool and
// the master process, /healthz and /readyz; other methods and paths are
// refused; once it stops accepting, new connections are not answered,
// and close returns.
func TestAdminServer(t *testing.T) {
	logs := &syncBuffer{}
	m, ws := fakePool(3)
	m.log = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	ws[2].state = Draining
	m.stats.heartbeat(ws[0], report(7, 2))
	m.publish()
	a, err := m.listenAdmin("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + a.ln.Addr().String()
	code, body := get(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`clusterd_workers{state="ready"} 2`,
		`clusterd_workers{state="draining"} 1`,
		`clusterd_workers_desired 3`,
		`clusterd_http_requests_total{code="2xx"} 7`,
		`clusterd_worker_http_connections{worker="1"} 2`,
		`clusterd_ready 1`,
		"clusterd_master_process_open_fds",
		"go_goroutines",
	} {
		if !strings.Contains(body, want+"\n") && !strings.Contains(body, want+" ") {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, _ := get(t, base+"/nothing"); code != 404 {
		t.Errorf("/nothing: %d, want 404", code)
	}
	resp, err := http.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz: %d, want 405", resp.StatusCode)
	}

	a.stopAccepting()
	if c, err := net.DialTimeout("tcp", a.ln.Addr().String(), time.Second); err == nil {
		_ = c.Close()
		t.Error("the admin socket still accepts after stopAccepting")
	}
	done := make(chan struct{})
	go func() { a.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return")
	}
	if strings.Contains(logs.String(), "admin server failed") {
		t.Errorf("stopping to accept was logged as a failure:\n%s", logs)
	}
	var nilAdmin *admin
	nilAdmin.stopAccepting() // no admin server: nothing to do
	nilAdmin.close()

	adminErrorLog{m}.Println("encoding", "failed")
	if !strings.Contains(logs.String(), "error=encodingfailed") {
		t.Errorf("a metrics error was not logged:\n%s", logs)
	}
}

// TestAdminBusyPort: a busy admin address fails the start with its address.
func TestAdminBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	m, _ := fakePool(1)
	m.cfg.AdminListen = ln.Addr().String()
	if a, err := m.startAdmin(); err == nil || !strings.Contains(err.Error(), "admin listener") {
		a.close()
		t.Fatalf("admin on a busy port: %v", err)
	}
	m.cfg.AdminListen = ""
	if a, err := m.startAdmin(); a != nil || err != nil {
		t.Fatalf("no admin address: %v %v", a, err)
	}
	if m.stats.latest.Load() == nil {
		t.Error("startAdmin did not publish the pool's state")
	}
}

// TestCheck: Check accepts a configuration that would start and names
// what would not, binding nothing.
func TestCheck(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" for ok
	}{
		{"defaults", Config{}, ""},
		{"a busy port is not bound", Config{Listen: []string{ln.Addr().String()}}, ""},
		{"a unix socket in a directory that exists", Config{Listen: []string{"unix:" + filepath.Join(dir, "a.sock")}}, ""},
		{"inherited forms", Config{Listen: []string{"fd:3", "systemd:web", "unix:@abstract"}}, ""},
		{"unknown scheduling", Config{Sched: "random"}, `unknown scheduling "random"`},
		{"too many workers", Config{Workers: MaxWorkers + 1}, "more than the maximum"},
		{"no such user", Config{User: "no-such-user-here"}, "no-such-user-here"},
		{"a bad listen address", Config{Listen: []string{"unix:"}}, "unix:"},
		{"a unix socket in a missing directory", Config{Listen: []string{"unix:" + filepath.Join(dir, "missing", "a.sock")}},
			"--listen unix:" + filepath.Join(dir, "missing", "a.sock")},
	} {
		tc.cfg.Logger = hclog.NewNullLogger()
		err := Check(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "a.sock")); !os.IsNotExist(err) {
		t.Errorf("Check created a socket file: %v", err)
	}
}
