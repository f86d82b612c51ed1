package httpcore

import (
	"context"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// NetHTTPConfig configures the net/http adapter. Zero fields take the
// defaults documented on each field.
type NetHTTPConfig struct {
	// Workers bounds the goroutines running handlers at once, over all the
	// connections of every Server using this Handler; default
	// 64×GOMAXPROCS. Requests beyond it wait in arrival order, and their
	// connections are not read meanwhile.
	Workers int
}

// DefaultWorkersPerProc is the default NetHTTPConfig.Workers per GOMAXPROCS.
const DefaultWorkersPerProc = 64

// NetHTTP returns a Handler that serves h, any standard net/http Handler,
// unchanged: a ServeMux with Go 1.22 patterns, a third-party router,
// http.FileServer.
//
// Handlers run off the loop, on a bounded pool of goroutines (see
// NetHTTPConfig.Workers). A connection's requests are handled one at a
// time, so pipelined responses go out in order. The *http.Request is a
// real one: Method, URL, Proto, canonical Header (without Host, which is in
// Host, and Transfer-Encoding, which is in TransferEncoding), ContentLength,
// RemoteAddr, RequestURI, Close, TLS nil. Its Body streams: the handler
// reads the body as it arrives, through a 64 KiB pipe that stops the
// connection from being read while it is full; Expect: 100-continue is
// answered on the first Read; a chunked body's trailer fields fill Trailer
// once Body is read to EOF. A body over Config.MaxBodyBytes is refused with
// 413 before the handler runs when its Content-Length says so, and fails
// with *http.MaxBytesError when chunked. The request's context is cancelled
// when the client goes away (EOF or reset), when the server closes the
// connection (a forced Shutdown, a write timeout) and when ServeHTTP
// returns.
//
// The http.ResponseWriter streams as described on ResponseWriter: a body
// that fits in 64 KiB and is written before ServeHTTP returns gets a
// Content-Length, a longer or flushed one is chunked (closed for HTTP/1.0)
// unless the handler set Content-Length, and Write blocks while the client
// is slow to read. It sniffs Content-Type like net/http, sends 1xx
// responses (except 101) from WriteHeader, sends trailers declared with the
// Trailer header or set with http.TrailerPrefix, and implements
// http.Flusher, io.ReaderFrom (with sendfile(2) for files, as
// http.FileServer and http.ServeContent copy them) and, for
// http.ResponseController, FlushError and EnableFullDuplex (reading the
// body while writing the response always works). SetReadDeadline and
// SetWriteDeadline are not supported (the Config timeouts apply), nor is
// Hijack: the writer is no http.Hijacker, so protocol upgrades such as
// WebSocket are refused. A panic in the handler is logged and answered
// with 500, or ends the response if it had begun, and the connection is
// closed; http.ErrAbortHandler closes the connection without a log.
func NetHTTP(h http.Handler, cfg NetHTTPConfig) Handler {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkersPerProc * runtime.GOMAXPROCS(0)
	}
	return &netHandler{h: h, pool: pool{max: cfg.Workers}}
}

type netHandler struct {
	h    http.Handler
	pool pool
}

func (a *netHandler) streamBodies() {}

// ServeHTTP runs on the loop: it turns r into an *http.Request and queues
// the handler on the pool.
func (a *netHandler) ServeHTTP(w *ResponseWriter, r *Request) {
	if r.method == "OPTIONS" && r.target == "*" {
		return // as net/http: 200, empty, without calling the handler
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := newNetRequest(ctx, r)
	if err != nil {
		cancel()
		w.SetHeader("Content-Type", "text/plain; charset=utf-8")
		w.SetHeader("Connection", "close")
		w.WriteHeader(400)
		_, _ = w.WriteString("400 Bad Request: " + err.Error() + "\n")
		return
	}
	j := &netJob{a: a, w: w, req: req, cancel: cancel, log: w.l.log}
	if r.stream != nil {
		r.stream.w = w
		j.body = &netBody{p: r.stream, req: j.req, limit: w.l.lim.maxBody}
		j.req.Body = j.body
	}
	w.Async()
	w.onGone(cancel)
	w.l.wake(func() { a.pool.submit(j) })
}

// A netJob is one request for the pool.
type netJob struct {
	a      *netHandler
	w      *ResponseWriter
	req    *http.Request
	body   *netBody // nil without a body
	cancel context.CancelFunc
	log    hclog.Logger
}

// run serves the request on a pool goroutine.
func (j *netJob) run() {
	nw := &netWriter{w: j.w, req: j.req, hdr: make(http.Header)}
	defer j.done(nw)
	j.a.h.ServeHTTP(nw, j.req)
}

// done ends the response after the handler returned or panicked.
func (j *netJob) done(nw *netWriter) {
	v := recover()
	j.cancel()
	if j.body != nil {
		j.body.p.Close()
	}
	switch {
	case v == nil:
		nw.end()
	case v == http.ErrAbortHandler:
		j.w.abort(false)
	default:
		j.log.Error("handler panic", "panic", v, "method", j.req.Method, "target", j.req.RequestURI,
			"remote", j.req.RemoteAddr, "stack", string(debug.Stack()))
		j.w.abort(true)
	}
}

// A pool runs jobs on at most max goroutines. Goroutines are started as
// jobs come and exit when none is waiting, so an idle pool holds none.
type pool struct {
	mu      sync.Mutex
	queue   []*netJob // waiting jobs are queue[head:]
	head    int
	running int
	max     int
}

// submit runs j now if a goroutine is free, later otherwise. It never
// blocks.
func (p *pool) submit(j *netJob) {
	p.mu.Lock()
	if p.running < p.max {
		p.running++
		p.mu.Unlock()
		go p.work(j)
		return
	}
	if p.head > 0 && p.head >= len(p.queue)/2 {
		n := copy(p.queue, p.queue[p.head:])
		clear(p.queue[n:])
		p.queue, p.head = p.queue[:n], 0
	}
	p.queue = append(p.queue, j)
	p.mu.Unlock()
}

func (p *pool) work(j *netJob) {
	for ; j != nil; j = p.next() {
		j.run()
	}
}

// next returns the oldest waiting job, or nil after retiring the calling
// goroutine.
func (p *pool) next() *netJob {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.head == len(p.queue) {
		clear(p.queue)
		p.queue, p.head = p.queue[:0], 0
		p.running--
		return nil
	}
	j := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	return j
}
