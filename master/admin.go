package master

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/ipc"
)

// The admin server answers from the snapshot the supervisor publishes, so
// it never waits for the supervisor or for a worker. A snapshot older than
// staleAfter means the supervisor itself is stuck: /healthz fails.
const (
	staleAfter        = 10 * time.Second
	adminReadTimeout  = 5 * time.Second
	adminWriteTimeout = 10 * time.Second
)

// admin is the --admin-listen HTTP server: /metrics, /healthz, /readyz.
type admin struct {
	srv      *http.Server
	ln       net.Listener
	done     chan struct{}
	handedUp atomic.Bool // stopAccepting closed ln: a new master answers on it
}

// listenAdmin binds the admin address, before any worker starts, so a busy
// port fails the start.
func (m *Master) listenAdmin(addr string) (*admin, error) {
	ln, err := m.adminListener(addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		&poolCollector{p: m.stats},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "clusterd_master"}),
		collectors.NewGoCollector(),
	)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: adminErrorLog{m}}))
	mux.HandleFunc("GET /healthz", m.healthz)
	mux.HandleFunc("GET /readyz", m.readyz)
	a := &admin{
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: adminReadTimeout,
			ReadTimeout: adminReadTimeout, WriteTimeout: adminWriteTimeout},
		ln:   ln,
		done: make(chan struct{}),
	}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !a.handedUp.Load() {
			m.log.Error("admin server failed", "error", err)
		}
	}()
	m.log.Info("admin listener", "addr", ln.Addr().String())
	return a, nil
}

// stopAccepting stops accepting on the admin socket, which a new master
// answers on after an upgrade; the connections already accepted are
// served. (Shutdown would drop a request read after it began.)
func (a *admin) stopAccepting() {
	if a != nil {
		a.handedUp.Store(true)
		_ = a.ln.Close()
	}
}

// close stops the admin server, letting scrapes in progress finish briefly.
func (a *admin) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = a.srv.Shutdown(ctx)
	<-a.done
}

type adminErrorLog struct{ m *Master }

func (l adminErrorLog) Println(v ...any) { l.m.log.Warn("metrics", "error", fmt.Sprint(v...)) }

// healthz answers 200 while the supervisor publishes its state.
func (m *Master) healthz(w http.ResponseWriter, _ *http.Request) {
	s := m.stats.latest.Load()
	if s == nil || time.Since(s.taken) > staleAfter {
		http.Error(w, "master not responding", http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// readyz answers 200 while at least one worker serves and the master is
// not stopping; a stop signal fails it at once.
func (m *Master) readyz(w http.ResponseWriter, _ *http.Request) {
	s := m.stats.latest.Load()
	switch {
	case m.stats.handedOver.Load():
		_, _ = w.Write([]byte("ok\n")) // a new master serves (upgrade.go)
	case m.stats.shutting.Load():
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
	case s == nil || !s.ready():
		http.Error(w, "no worker ready", http.StatusServiceUnavailable)
	default:
		_, _ = w.Write([]byte("ok\n"))
	}
}

// poolCollector turns the published snapshot into metrics.
type poolCollector struct{ p *poolStats }

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("clusterd_"+name, help, labels, nil)
}

var (
	descRequests = desc("http_requests_total", "Responses sent by all workers, past and present, by status class.", "code")
	descDuration = desc("http_request_duration_seconds", "Time from a request being complete to its response being queued, on the event loop's clock.")
	descInFlight = desc("http_requests_in_flight", "Requests whose handler answers off the event loop and has not finished.")
	descConns    = desc("http_connections", "Client connections open.")
	descIdle     = desc("http_idle_connections", "Keep-alive connections open between requests.")
	descAccepted = desc("http_connections_accepted_total", "Client connections accepted by all workers.")
	descGiven    = desc("http_connections_given_away_total", "Idle keep-alive connections a worker over its share gave to another through the master (reuseport scheduling).")
	descBytesIn  = desc("http_received_bytes_total", "Bytes read from clients.")
	descBytesOut = desc("http_sent_bytes_total", "Bytes written to clients.")
	descRefused  = desc("http_refused_requests_total", "Requests the engine refused (malformed, too large, too slow, unsupported), by kind.", "kind")
	descDropped  = desc("access_log_dropped_lines_total", "Access log lines dropped because the log's queue was full.")

	descWRequests = desc("worker_http_requests_total", "Responses sent by the workers of a slot, past and present.", "worker")
	descWAccepted = desc("worker_http_connections_accepted_total", "Client connections accepted by the workers of a slot, past and present.", "worker")
	descWGiven    = desc("worker_http_connections_given_away_total", "Idle connections the workers of a slot, past and present, gave to other workers.", "worker")
	descWConns    = desc("worker_http_connections", "Client connections open in the workers of a slot.", "worker")
	descWInFlight = desc("worker_http_requests_in_flight", "Requests in flight in the workers of a slot.", "worker")
	descWRSS      = desc("worker_resident_memory_bytes", "Resident memory of the workers of a slot.", "worker")
	descWBeat     = desc("worker_heartbeat_age_seconds", "Time since the event loop of a slot's worker last turned, as of its last heartbeat (the oldest if two share the slot).", "worker")
	descWInfo     = desc("worker_info", "One series per live worker process.", "worker", "pid", "generation", "state")
	descWExits    = desc("worker_exits_total", "Worker processes of a slot that ended: exited when asked, or failed (crashed, or killed as hung, unready or slow to drain).", "worker", "how")
	descWRestarts = desc("worker_restarts_total", "Workers started in a slot after its first, to replace one that ended on its own or was killed.", "worker")
	descWCrashes  = desc("worker_crash_streak", "Unexpected exits in a row of a slot's workers; the back-off before a restart grows with it.", "worker")

	descWorkers    = desc("workers", "Live worker processes by state.", "state")
	descDesired    = desc("workers_desired", "The pool size the master maintains.")
	descBackoff    = desc("workers_backing_off", "Slots waiting out a back-off before their worker is restarted.")
	descGeneration = desc("generation", "The newest worker generation: 0 at start, +1 per rolling restart.")
	descRolling    = desc("rolling_restart_in_progress", "1 while a rolling restart runs.")
	descRolls      = desc("rolling_restarts_total", "Rolling restarts finished, by result.", "result")
	descRecycled   = desc("workers_recycled_total", "Workers replaced for reaching a limit, by limit.", "limit")
	descReady      = desc("ready", "1 when at least one worker serves and the master is not stopping (as /readyz).")
	descSnapAge    = desc("snapshot_age_seconds", "Age of the supervisor's state these metrics were read from.")
	descPassLost   = desc("http_connections_pass_refused_total", "Idle connections a worker gave away that the master could not receive (at its descriptor limit); the worker served them again (reuseport scheduling).")
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descInFlight, descConns, descIdle,
		descAccepted, descGiven, descBytesIn, descBytesOut, descRefused, descDropped, descWRequests, descWAccepted, descWGiven, descWConns,
		descWInFlight, descWRSS, descWBeat, descWInfo, descWExits, descWRestarts, descWCrashes,
		descWorkers, descDesired, descBackoff, descGeneration, descRolling, descRolls, descRecycled,
		descReady, descSnapAge, descPassLost} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.latest.Load()
	if s == nil {
		return
	}
	slots := s.bySlot()
	var pool ipc.WorkerStats
	for _, st := range slots {
		pool.AddCounters(st)
		pool.AddGauges(st)
	}
	collectPool(ch, &pool)
	collectSlots(ch, s, slots)
	c.collectMaster(ch, s)
}

func counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
}

func gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

var classes = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func collectPool(ch chan<- prometheus.Metric, st *ipc.WorkerStats) {
	for i, n := range st.Responses {
		counter(ch, descRequests, float64(n), classes[i])
	}
	buckets := make(map[float64]uint64, len(httpcore.DurationBuckets))
	var cum uint64
	for i, le := range httpcore.DurationBuckets {
		if i < len(st.Duration) {
			cum += st.Duration[i]
		}
		buckets[le] = cum
	}
	total := cum
	for i := len(httpcore.DurationBuckets); i < len(st.Duration); i++ {
		total += st.Duration[i]
	}
	ch <- prometheus.MustNewConstHistogram(descDuration, total, st.DurationSum, buckets)
	gauge(ch, descInFlight, float64(st.InFlight))
	gauge(ch, descConns, float64(st.Open))
	gauge(ch, descIdle, float64(st.Idle))
	counter(ch, descAccepted, float64(st.Accepted))
	counter(ch, descGiven, float64(st.GivenAway))
	counter(ch, descBytesIn, float64(st.BytesIn))
	counter(ch, descBytesOut, float64(st.BytesOut))
	for _, kind := range httpcore.RefusedKinds {
		counter(ch, descRefused, float64(st.Refused[kind]), kind)
	}
	counter(ch, descDropped, float64(st.AccessLogDropped))
}

func collectSlots(ch chan<- prometheus.Metric, s *snapshot, slots map[int]*ipc.WorkerStats) {
	for id, st := range slots {
		w := strconv.Itoa(id)
		counter(ch, descWRequests, float64(st.Requests()), w)
		counter(ch, descWAccepted, float64(st.Accepted), w)
		counter(ch, descWGiven, float64(st.GivenAway), w)
		gauge(ch, descWConns, float64(st.Open), w)
		gauge(ch, descWInFlight, float64(st.InFlight), w)
		gauge(ch, descWRSS, float64(st.RSS), w)
	}
	oldest := map[int]time.Duration{}
	for _, w := range s.workers {
		gauge(ch, descWInfo, 1, strconv.Itoa(w.slot), strconv.Itoa(w.pid), strconv.Itoa(w.generation), w.state.String())
		if w.state == Ready || w.state == Draining {
			oldest[w.slot] = max(oldest[w.slot], w.heartbeatAge)
		}
	}
	for id, age := range oldest {
		gauge(ch, descWBeat, age.Seconds(), strconv.Itoa(id))
	}
	for id, e := range s.exits {
		counter(ch, descWExits, float64(e[0]), strconv.Itoa(id), "exited")
		counter(ch, descWExits, float64(e[1]), strconv.Itoa(id), "failed")
	}
	for _, sl := range s.slots {
		counter(ch, descWRestarts, float64(sl.restarts), strconv.Itoa(sl.id))
		gauge(ch, descWCrashes, float64(sl.crashes), strconv.Itoa(sl.id))
	}
}

func (c *poolCollector) collectMaster(ch chan<- prometheus.Metric, s *snapshot) {
	var byState [Failed + 1]int
	backingOff := 0
	for _, w := range s.workers {
		byState[w.state]++
	}
	for _, sl := range s.slots {
		if sl.backingOff {
			backingOff++
		}
	}
	for st := Starting; st <= Draining; st++ {
		gauge(ch, descWorkers, float64(byState[st]), st.String())
	}
	gauge(ch, descDesired, float64(s.desired))
	gauge(ch, descBackoff, float64(backingOff))
	gauge(ch, descGeneration, float64(s.generation))
	gauge(ch, descRolling, b2f(s.rolling))
	counter(ch, descRolls, float64(s.rolls[0]), "done")
	counter(ch, descRolls, float64(s.rolls[1]), "failed")
	for _, k := range []string{LimitRequests, LimitRSS} {
		counter(ch, descRecycled, float64(s.recycled[k]), k)
	}
	gauge(ch, descReady, b2f(s.ready() && !c.p.shutting.Load()))
	gauge(ch, descSnapAge, time.Since(s.taken).Seconds())
	counter(ch, descPassLost, float64(c.p.passRefused.Load()))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
