package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// adminAddr returns the admin listener's address from the master's log.
func (c *cluster) adminAddr() string {
	c.t.Helper()
	l := c.waitLog(5*time.Second, func(l map[string]any) bool { return l["@message"] == "admin listener" })
	return l["addr"].(string)
}

// adminGet fetches path from the admin server and returns the status, the
// body and how long it took.
func adminGet(t *testing.T, addr, path string) (int, string, time.Duration) {
	t.Helper()
	client := newConnClient()
	start := time.Now()
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, string(b), time.Since(start)
}

// metrics is a scrape: the value of every series, by its name and labels
// as written (`name{a="b"}`).
type metrics map[string]float64

func scrape(t *testing.T, addr string) metrics {
	t.Helper()
	code, body, _ := adminGet(t, addr, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	return parseMetrics(t, body)
}

func parseMetrics(t *testing.T, body string) metrics {
	m := metrics{}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if i < 0 || err != nil {
			t.Fatalf("bad metrics line %q", line)
		}
		m[line[:i]] = v
	}
	return m
}

// sum adds up every series of the metric name.
func (m metrics) sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// waitRequests waits until the pool's request counter reaches want, and
// fails if it goes past it or if the per-worker counters disagree.
func waitRequests(t *testing.T, c *cluster, admin string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var m metrics
	for time.Now().Before(deadline) {
		m = scrape(t, admin)
		if m.sum("clusterd_http_requests_total") >= want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	pool, perWorker := m.sum("clusterd_http_requests_total"), m.sum("clusterd_worker_http_requests_total")
	if pool != want || perWorker != want {
		t.Fatalf("requests counted: pool %v, sum over workers %v; want %v; log:\n%s", pool, perWorker, want, c.log())
	}
}

// runLoad sends keep-alive requests for d and returns how many were answered.
func runLoad(t *testing.T, addr string, d time.Duration) float64 {
	t.Helper()
	l := startLoad(addr, "/", 4, d)
	time.Sleep(d)
	l.stopAndWait()
	if l.errs.Load() != 0 || l.ok.Load() == 0 {
		t.Fatalf("load: %v", l)
	}
	return float64(l.ok.Load() + l.non2xx.Load())
}

// TestMetricsCountEveryRequest checks that the pool's request counter
// equals what clients were answered, and stays right when a worker is
// killed and when every worker is replaced by a rolling restart.
func TestMetricsCountEveryRequest(t *testing.T) {
	c := startCluster(t, 2, nil, "--workers", "2", "--admin-listen", "127.0.0.1:0")
	admin := c.adminAddr()
	total := runLoad(t, c.addr, 700*time.Millisecond)
	waitRequests(t, c, admin, total)

	live := c.livePids()
	if err := syscall.Kill(live[1], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker ready" && l["id"] == 1.0 && int(l["pid"].(float64)) != live[1]
	})
	waitRequests(t, c, admin, total) // the killed worker's counts are kept
	total += runLoad(t, c.addr, 500*time.Millisecond)
	waitRequests(t, c, admin, total)

	c.signal(syscall.SIGHUP)
	c.waitLog(15*time.Second, func(l map[string]any) bool { return l["@message"] == "rolling restart done" })
	waitRequests(t, c, admin, total)
	total += runLoad(t, c.addr, 500*time.Millisecond)
	waitRequests(t, c, admin, total)

	m := scrape(t, admin)
	for _, series := range []string{
		`clusterd_workers{state="ready"}`, `clusterd_workers_desired`,
		`clusterd_rolling_restarts_total{result="done"}`, `clusterd_generation`, `clusterd_ready`,
		`clusterd_worker_exits_total{how="failed",worker="1"}`,
	} {
		want := map[string]float64{`clusterd_workers{state="ready"}`: 2, `clusterd_workers_desired`: 2}[series]
		if want == 0 {
			want = 1
		}
		if m[series] != want {
			t.Errorf("%s = %v, want %v", series, m[series], want)
		}
	}
	if m.sum("clusterd_http_request_duration_seconds_count") != total {
		t.Errorf("histogram count %v, want %v", m.sum("clusterd_http_request_duration_seconds_count"), total)
	}
	if m.sum("clusterd_http_connections_accepted_total") < 4 {
		t.Errorf("accepted connections %v", m.sum("clusterd_http_connections_accepted_total"))
	}
}

// TestAdminAnswersWhileWorkersHang blocks the event loop of every worker:
// the admin server, served by the master, still answers at once.
func TestAdminAnswersWhileWorkersHang(t *testing.T) {
	c := startCluster(t, 2, []string{envHang + "=1"}, "--workers", "2", "--sched", "rr",
		"--worker-timeout", "3s", "--admin-listen", "127.0.0.1:0")
	admin := c.adminAddr()
	for range 2 { // round-robin: one to each worker
		conn, err := net.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		m := scrape(t, admin)
		if m[`clusterd_worker_heartbeat_age_seconds{worker="1"}`] > 1 && m[`clusterd_worker_heartbeat_age_seconds{worker="2"}`] > 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workers' loops never looked blocked: %v", m)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Each answer within 100ms; on this shared machine a request may lose
	// its CPU for longer now and then, so each gets up to three tries.
	for range 5 {
		for _, path := range []string{"/healthz", "/metrics"} {
			var tries []time.Duration
			for len(tries) < 3 {
				code, _, took := adminGet(t, admin, path)
				if code != 200 {
					t.Fatalf("%s with every worker blocked: %d", path, code)
				}
				if tries = append(tries, took); took <= 100*time.Millisecond {
					break
				}
			}
			if last := tries[len(tries)-1]; last > 100*time.Millisecond {
				t.Errorf("%s with every worker blocked took %v", path, tries)
			}
		}
	}
	if code, body, _ := adminGet(t, admin, "/readyz"); code != 200 {
		t.Errorf("/readyz: %d %s", code, body) // hung, but not yet known to be
	}
	for _, id := range []float64{1, 2} {
		c.waitLog(10*time.Second, func(l map[string]any) bool {
			return l["@message"] == hungMessage && l["id"] == id
		})
	}
	c.waitReady(2, 10*time.Second)
}

// TestShutdownDelay is the Kubernetes stop sequence: on SIGTERM /readyz
// fails at once while requests are served for the shutdown delay; then the
// pool drains with no request failed.
func TestShutdownDelay(t *testing.T) {
	const delay = 1500 * time.Millisecond
	c := startCluster(t, 2, nil, "--workers", "2", "--admin-listen", "127.0.0.1:0",
		"--shutdown-delay", delay.String())
	admin := c.adminAddr()
	waitReadyz(t, admin, 200)
	l := startLoad(c.addr, "/", 4, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	c.signal(syscall.SIGTERM)
	signalled := time.Now()
	waitReadyz(t, admin, 503)
	if took := time.Since(signalled); took > 500*time.Millisecond { // at once: well before the 1.5s delay ends
		t.Errorf("/readyz failed %v after SIGTERM", took)
	}
	before := l.ok.Load()
	time.Sleep(delay - 500*time.Millisecond)
	if code, _, err := c.get(newConnClient(), "/"); err != nil || code != 200 {
		t.Errorf("a new connection during the shutdown delay: %d %v", code, err)
	}
	if l.ok.Load() <= before {
		t.Errorf("no request served during the shutdown delay")
	}
	l.stopAndWait() // the load balancer has taken us out by now
	if code := c.wait(10 * time.Second); code != 0 {
		t.Errorf("master exit code %d", code)
	} else if since := time.Since(signalled); since < delay {
		t.Errorf("stopped %v after SIGTERM, before the delay of %v", since, delay)
	}
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 {
		t.Errorf("load: %v", l)
	}
	c.waitLog(time.Second, func(l map[string]any) bool { return l["@message"] == "shutdown delay over: graceful stop" })
}

// waitReadyz polls /readyz until it answers want, for at most 2s.
func waitReadyz(t *testing.T, admin string, want int) {
	t.Helper()
	client := newConnClient()
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := client.Get("http://" + admin + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered %d (last %v %v)", want, resp, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const hungMessage = "worker hung: asking for a goroutine dump before killing it"

// TestHungWorkerDumpsStacks: before a worker whose loop spins is replaced,
// the master's log shows the stack of the goroutine that was stuck.
func TestHungWorkerDumpsStacks(t *testing.T) {
	c := startCluster(t, 1, []string{envHang + "=1"}, "--workers", "1", "--worker-timeout", "1s")
	before := c.livePids()[1]
	client := newConnClient()
	client.Timeout = 200 * time.Millisecond
	if _, _, err := c.get(client, "/spin"); err == nil {
		t.Fatal("GET /spin answered")
	}
	c.waitLog(5*time.Second, func(l map[string]any) bool { return l["@message"] == hungMessage })
	dump := c.waitLog(5*time.Second, func(l map[string]any) bool {
		line, _ := l["line"].(string)
		return l["@message"] == "stderr" && strings.HasPrefix(line, "SIGQUIT: goroutine dump")
	})
	if int(dump["pid"].(float64)) != before {
		t.Errorf("dump from pid %v, want %d", dump["pid"], before)
	}
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		line, _ := l["line"].(string)
		return l["@message"] == "stderr" && strings.Contains(line, ".spinForever(")
	})
	c.waitLog(5*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker ready" && int(l["pid"].(float64)) != before
	})
}

// TestCtlTop: ctl top shows each worker with its request rate, connections
// and memory, one frame per interval.
func TestCtlTop(t *testing.T) {
	path := ctlPath(t)
	// Round-robin: each worker gets two of the four connections.
	c := startCluster(t, 2, nil, "--workers", "2", "--control", path, "--sched", "rr")
	l := startLoad(c.addr, "/", 4, 10*time.Second)
	defer l.stopAndWait()
	time.Sleep(1200 * time.Millisecond) // a heartbeat with traffic
	code, out, errOut := ctlRun(t, path, "top", "--count", "3", "--interval", "1100ms")
	if code != 0 {
		t.Fatalf("ctl top: exit %d %s", code, errOut)
	}
	frames := strings.Split(strings.TrimSpace(out), "\n\n")
	if len(frames) != 3 {
		t.Fatalf("%d frames:\n%s", len(frames), out)
	}
	last := strings.Split(frames[2], "\n")
	if len(last) != 4 || !strings.HasPrefix(last[0], "clusterd top: master") || !strings.Contains(last[1], "REQ/S") {
		t.Fatalf("last frame:\n%s", frames[2])
	}
	for _, row := range last[2:] {
		f := strings.Fields(row)
		if len(f) != 11 || f[3] != "ready" || !strings.HasSuffix(f[7], "MiB") {
			t.Errorf("row %q", row)
			continue
		}
		if rate, err := strconv.Atoi(f[4]); err != nil || rate <= 0 {
			t.Errorf("row %q: requests/s %q under load", row, f[4])
		}
	}
	if code, _, _ := ctlRun(t, path, "top", "--count", "-1"); code != 2 {
		t.Errorf("--count -1: exit %d", code)
	}
}
