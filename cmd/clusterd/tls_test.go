package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/internal/testcert"
)

// tlsCluster starts a master serving the demo app over TLS on a second
// listener with the certificate in dir's site.crt and site.key; it returns
// the cluster and the TLS listener's address.
func tlsCluster(t *testing.T, workers int, dir string, args ...string) (*cluster, string) {
	t.Helper()
	args = append([]string{"--workers", fmt.Sprint(workers), "--control", filepath.Join(dir, "ctl.sock"),
		"--tls-listen", "localhost:0", // another key than --listen 127.0.0.1:0
		"--tls-cert", filepath.Join(dir, "site.crt"), "--tls-key", filepath.Join(dir, "site.key")}, args...)
	c := startCluster(t, workers, nil, args...)
	l := c.waitLog(5*time.Second, func(l map[string]any) bool {
		a, ok := l["addr"].(string)
		return l["@message"] == "listening" && ok && a != c.addr
	})
	return c, l["addr"].(string)
}

// writeCert writes a new certificate for 127.0.0.1 as dir's site.crt and
// site.key, each replaced by a rename as a deployment would.
func writeCert(t *testing.T, dir string) *testcert.Cert {
	t.Helper()
	cert, err := testcert.New("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	replace(t, filepath.Join(dir, "site.crt"), cert.CertPEM)
	replace(t, filepath.Join(dir, "site.key"), cert.KeyPEM)
	return cert
}

func replace(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
}

// presented returns the serial number of the certificate a new connection
// to addr is shown.
func presented(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// httpsClient trusts cert, makes a new connection per request, and
// resumes sessions from cache when set.
func httpsClient(cert *testcert.Cert, cache tls.ClientSessionCache) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: cert.Pool, ClientSessionCache: cache},
	}}
}

func TestTLSServesDemoApp(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir)
	_, addr := tlsCluster(t, 1, dir)
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := client.Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want || string(body) != "Hello World\n" {
			t.Errorf("h2 %v: %s %q", h2, resp.Proto, body)
		}
	}
}

// Certificates rotate through a roll under load with no failed request;
// a key that does not load refuses the roll, and the workers serve on.
func TestTLSCertRotationUnderLoad(t *testing.T) {
	dir := t.TempDir()
	certA := writeCert(t, dir)
	_, addr := tlsCluster(t, 2, dir)
	ctl := filepath.Join(dir, "ctl.sock")
	if got := presented(t, addr); got != certA.Leaf.SerialNumber.String() {
		t.Fatalf("presented %s, want certificate A", got)
	}
	l := startLoadTLS(addr, "/", 16, 30*time.Second, false, &tls.Config{InsecureSkipVerify: true})
	time.Sleep(300 * time.Millisecond)
	certB := writeCert(t, dir)
	if code, _, errOut := ctlRun(t, ctl, "reload"); code != 0 {
		l.stopAndWait()
		t.Fatalf("reload: %d %s", code, errOut)
	}
	// The reload answers once the workers it replaced accept no more: every
	// connection made after it gets B.
	if got := presented(t, addr); got != certB.Leaf.SerialNumber.String() {
		t.Errorf("after the reload a new connection got %s, want certificate B", got)
	}
	replace(t, filepath.Join(dir, "site.key"), []byte("-----BEGIN EC PRIVATE KEY-----\nbroken\n-----END EC PRIVATE KEY-----\n"))
	code, _, errOut := ctlRun(t, ctl, "reload")
	if code == 0 || !strings.Contains(errOut, "site.key") {
		t.Errorf("reload with a broken key: exit %d, %q; want refused naming the key", code, errOut)
	}
	time.Sleep(300 * time.Millisecond)
	if got := presented(t, addr); got != certB.Leaf.SerialNumber.String() {
		t.Errorf("after the refused reload a new connection got %s, want certificate B", got)
	}
	l.stopAndWait()
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 || l.ok.Load() == 0 {
		t.Errorf("load over the rotations: %v", l)
	}
	t.Logf("load over the rotations: %v", l)
}

// A session resumes whichever worker the client reaches: the master gives
// every worker the same ticket keys.
func TestTLSResumesOnAnyWorker(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir)
	_, addr := tlsCluster(t, 4, dir)
	client := httpsClient(cert, tls.NewLRUClientSessionCache(8))
	pids := map[int]int{}
	for i := 0; i < 80 && (i < 21 || len(pids) < 2); i++ { // 1 full handshake, then 20+ resumed
		resp, err := client.Get("https://" + addr + "/worker")
		if err != nil {
			t.Fatal(err)
		}
		var w struct{ PID int }
		err = json.NewDecoder(resp.Body).Decode(&w)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if i > 0 && !resp.TLS.DidResume {
			t.Fatalf("reconnect %d (worker %d) was not resumed; workers so far %v", i, w.PID, pids)
		}
		if i > 0 {
			pids[w.PID]++
		}
	}
	if len(pids) < 2 {
		t.Fatalf("every resumed connection reached worker %v; want several", pids)
	}
	t.Logf("resumed connections by worker pid: %v", pids)
}

// --root files, read and encrypted on the loop (HTTP/1.1) or sent with
// sendfile into the socket pair of an HTTP/2 stream, arrive whole.
func TestTLSServesRoot(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir)
	www := filepath.Join(dir, "www")
	data := []byte(strings.Repeat("0123456789abcdef", 1<<16)) // 1 MiB
	if err := os.MkdirAll(www, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(www, "big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_, addr := tlsCluster(t, 1, dir, "--root", www)
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: h2}
		if !h2 {
			tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
		}
		client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := client.Get("https://" + addr + "/big.bin")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if resp.StatusCode != 200 || string(body) != string(data) {
			t.Errorf("h2 %v: %s %d, %d of %d bytes", h2, resp.Proto, resp.StatusCode, len(body), len(data))
		}
	}
}

// TLS flags that do not go together are a one-line error.
func TestTLSFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--tls-listen", ":8443"}, "--tls-listen needs --tls-cert and --tls-key"},
		{[]string{"--tls-cert", "c", "--tls-key", "k"}, "--tls-cert needs --tls-listen"},
		{[]string{"--tls-listen", ":8443", "--tls-cert", "c"}, "come in pairs, got 1 and 0"},
		{[]string{"--tls-listen", ":8443", "--tls-cert", "c", "--tls-key", "k", "--tls-cert", "d"}, "come in pairs, got 2 and 1"},
		{[]string{"--tls-listen", ":8443", "--tls-cert", "c", "--tls-key", "k", "--sched", "rr"}, "--tls-listen needs --sched shared or reuseport"},
	} {
		_, err := parseServe(tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.want)
		}
	}
	cfg, err := parseServe([]string{"--tls-listen", ":8443", "--tls-cert", "a.crt", "--tls-key", "a.key", "--tls-cert", "b.crt", "--tls-key", "b.key"})
	if err != nil || len(cfg.opts.TLSCerts) != 2 || cfg.opts.TLSCerts[1].Cert != "b.crt" || cfg.opts.TLSCerts[1].Key != "b.key" {
		t.Errorf("two pairs: %+v, %v", cfg.opts.TLSCerts, err)
	}
}

// A certificate that does not load, or an address that is both TLS and
// plaintext, stops the master before any worker starts.
func TestTLSBadCertFailsStart(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	crt, key := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	replace(t, key, []byte("not a key"))
	code, stderr := failStart(t, mainCmd("--listen", "127.0.0.1:0", "--tls-listen", "localhost:0",
		"--tls-cert", crt, "--tls-key", key, "--control", filepath.Join(dir, "ctl.sock")))
	if code != 1 || !strings.Contains(stderr, "site.key") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("exit %d, stderr %q; want 1 and one line naming the key", code, stderr)
	}
	writeCert(t, dir)
	code, stderr = failStart(t, mainCmd("--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
		"--tls-cert", crt, "--tls-key", key, "--control", filepath.Join(dir, "ctl.sock")))
	if code != 1 || !strings.Contains(stderr, "both a TLS and a plaintext listener") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

// clusterd check loads the certificates as a worker would.
func TestTLSCheck(t *testing.T) {
	dir := t.TempDir()
	writeCert(t, dir)
	crt, key := filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	args := []string{"check", "--tls-listen", "localhost:0", "--tls-cert", crt, "--tls-key", key}
	var out, errOut bytes.Buffer
	if code := run(args, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "configuration ok" {
		t.Errorf("good pair: exit %d, %q %q", code, out.String(), errOut.String())
	}
	replace(t, key, []byte("broken"))
	out.Reset()
	errOut.Reset()
	code := run(args, &out, &errOut)
	got := strings.TrimSpace(errOut.String())
	if code != 1 || !strings.HasPrefix(got, "clusterd check: certificate "+crt+", key "+key+": ") || strings.Contains(got, "\n") {
		t.Errorf("broken key: exit %d, %q", code, got)
	}
}

// HTTP/2 clients ride through a roll: a draining worker sends GOAWAY and
// finishes the streams it took, and the client goes on on a new
// connection.
func TestTLSHTTP2ThroughRoll(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir)
	_, addr := tlsCluster(t, 2, dir)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: cert.Pool}, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	stop := make(chan struct{})
	type result struct {
		ok   int
		errs []string
	}
	results := make(chan result, 8)
	for range 8 {
		go func() {
			var r result
			defer func() { results <- r }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := client.Get("https://" + addr + "/")
				if err != nil {
					r.errs = append(r.errs, err.Error())
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
					r.errs = append(r.errs, resp.Proto+" "+resp.Status)
					continue
				}
				r.ok++
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	for range 2 {
		if code, _, errOut := ctlRun(t, filepath.Join(dir, "ctl.sock"), "reload"); code != 0 {
			t.Errorf("reload: %d %s", code, errOut)
		}
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	var total result
	for range 8 {
		r := <-results
		total.ok += r.ok
		total.errs = append(total.errs, r.errs...)
	}
	if len(total.errs) > 0 || total.ok == 0 {
		t.Errorf("%d ok, %d failed through two rolls: %v", total.ok, len(total.errs), total.errs[:min(len(total.errs), 5)])
	}
	t.Logf("%d HTTP/2 requests through two rolls", total.ok)
}

// A session from before a master upgrade (ctl upgrade) resumes on the new
// master's workers: the old master passes its ticket keys.
func TestTLSResumesAcrossUpgrade(t *testing.T) {
	dir := t.TempDir()
	cert := writeCert(t, dir)
	exe := filepath.Join(dir, "clusterd")
	install(t, os.Args[0], exe)
	c, ctl, pidFile := upgradeCluster(t, exe, nil, "--tls-listen", "localhost:0",
		"--tls-cert", filepath.Join(dir, "site.crt"), "--tls-key", filepath.Join(dir, "site.key"))
	addr := c.waitLog(5*time.Second, func(l map[string]any) bool {
		a, ok := l["addr"].(string)
		return l["@message"] == "listening" && ok && a != c.addr
	})["addr"].(string)
	client := httpsClient(cert, tls.NewLRUClientSessionCache(8))
	get := func() (pid int, resumed bool) {
		t.Helper()
		resp, err := client.Get("https://" + addr + "/worker")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var w struct{ PID int }
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			t.Fatal(err)
		}
		return w.PID, resp.TLS.DidResume
	}
	before, _ := get() // a full handshake: the client keeps a ticket
	first := c.cmd.Process.Pid
	if code, _, errOut := ctlRun(t, ctl, "upgrade"); code != 0 {
		t.Fatalf("ctl upgrade: exit %d: %s", code, errOut)
	}
	newMaster := readPID(t, pidFile)
	remember(newMaster)
	waitGone(t, first, 15*time.Second)
	after, resumed := get()
	if !resumed {
		t.Fatal("the session from before the upgrade did not resume after it")
	}
	if after == before {
		t.Fatalf("answered by worker %d again; want one of the new master's", after)
	}
}
