package master

import (
	"net/http/httptest"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/clusterd/clusterd/ipc"
)

// fakePool is a Master with hand-made workers, no processes.
func fakePool(n int) (*Master, []*worker) {
	m := newMaster(Config{Logger: hclog.NewNullLogger()}, nil, realClock{})
	var ws []*worker
	for id := 1; id <= n; id++ {
		w := &worker{slot: id, pid: 1000 + id, state: Ready, log: hclog.NewNullLogger()}
		m.slots[id] = &slot{id: id, worker: w}
		m.workers[w] = struct{}{}
		ws = append(ws, w)
	}
	return m, ws
}

func report(requests2xx uint64, open int64) *ipc.WorkerStats {
	return &ipc.WorkerStats{Responses: [6]uint64{2: requests2xx}, Duration: []uint64{requests2xx}, Open: open}
}

// scrapeText publishes m's state and returns /metrics as Prometheus
// serves it (text format) with the pool collector alone.
func scrapeText(t *testing.T, m *Master) string {
	t.Helper()
	m.publish()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&poolCollector{p: m.stats})
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("/metrics: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

// value sums the series of the metric name whose labels include label
// (any, if "").
func value(t *testing.T, m *Master, name, label string) float64 {
	t.Helper()
	var sum float64
	for _, line := range strings.Split(scrapeText(t, m), "\n") {
		series, v, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		metric, labels, _ := strings.Cut(series, "{")
		if metric != name || label != "" && !strings.Contains(labels, `"`+label+`"`) {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			t.Fatalf("bad line %q", line)
		}
		sum += f
	}
	return sum
}

// TestCountersSurviveReplacement: a slot's and the pool's counters keep
// the counts of the workers that are gone.
func TestCountersSurviveReplacement(t *testing.T) {
	m, ws := fakePool(2)
	m.stats.heartbeat(ws[0], report(10, 3))
	m.stats.heartbeat(ws[1], report(5, 1))
	if got := value(t, m, "clusterd_http_requests_total", "2xx"); got != 15 {
		t.Fatalf("pool requests %v, want 15", got)
	}
	// Worker 1 is killed after one more report; its replacement starts at 0.
	m.stats.heartbeat(ws[0], report(12, 3))
	delete(m.workers, ws[0])
	ws[0].state = Failed
	m.stats.retire(ws[0])
	repl := &worker{slot: 1, pid: 2001, state: Ready, log: hclog.NewNullLogger()}
	m.workers[repl] = struct{}{}
	if got := value(t, m, "clusterd_http_requests_total", "2xx"); got != 17 {
		t.Fatalf("pool requests after a replacement %v, want 17", got)
	}
	m.stats.heartbeat(repl, report(4, 1))
	if got := value(t, m, "clusterd_http_requests_total", "2xx"); got != 21 {
		t.Fatalf("pool requests %v, want 21", got)
	}
	if got := value(t, m, "clusterd_http_connections", ""); got != 2 {
		t.Errorf("open connections %v, want 2 (the gone worker's do not count)", got)
	}
	s := m.stats.latest.Load()
	if got := s.bySlot()[1].Requests(); got != 16 {
		t.Errorf("slot 1 requests %v, want 16", got)
	}
	if e := s.exits[1]; e != [2]uint64{0, 1} {
		t.Errorf("slot 1 exits %v", e)
	}
}

// TestMetricsLint runs Prometheus's linter and, where Debian's prometheus
// package installed it, promtool over a scrape.
func TestMetricsLint(t *testing.T) {
	m, ws := fakePool(3)
	for i, w := range ws {
		m.stats.heartbeat(w, report(uint64(10*i), int64(i)))
	}
	m.publish()
	c := &poolCollector{p: m.stats}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	text := strings.NewReader(scrapeText(t, m))
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not installed; linted in-process only")
		return
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = text
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}
