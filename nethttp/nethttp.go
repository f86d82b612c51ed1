// Package nethttp serves standard net/http Handlers on httpcore's event
// loop. It is built on httpcore's public API alone: the engine reads and
// parses requests on its loop, and this package runs the handlers. With
// GOMAXPROCS 1 (clusterd's workers by default) a handler runs on the loop's
// goroutine, and the loop moves to another goroutine if the handler blocks
// (httpcore.ResponseWriter.RunInline); otherwise handlers run on a bounded
// pool of goroutines beside the loop.
//
// Any http.Handler runs unchanged: a ServeMux with Go 1.22 patterns, a
// third-party router, http.FileServer, a WebSocket server (Hijack), and,
// with Config.H2C, HTTP/2 over cleartext TCP.
package nethttp

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/clusterd/clusterd/httpcore"
)

// Config configures a Handler. Zero fields take the defaults documented on
// each field.
type Config struct {
	// Workers bounds the handlers running at once, over all the
	// connections of every Server using this Handler; default
	// 64×GOMAXPROCS. Requests beyond it wait in arrival order, and their
	// connections are not read meanwhile. Hijacked connections and HTTP/2
	// streams do not count.
	Workers int
	// H2C serves HTTP/2 over cleartext TCP besides HTTP/1.1: connections
	// that start with the HTTP/2 preface (prior knowledge) and requests
	// asking to upgrade with "Upgrade: h2c" (RFC 7540 3.2), through
	// golang.org/x/net/http2.
	H2C bool
}

// DefaultWorkersPerProc is the default Config.Workers per GOMAXPROCS.
const DefaultWorkersPerProc = 64

// A Handler is an httpcore.Handler that serves a net/http Handler.
//
// The *http.Request is a real one: Method, URL, Proto, canonical Header
// (without Host, which is in Host, and Transfer-Encoding, which is in
// TransferEncoding), ContentLength, RemoteAddr, RequestURI, Close, TLS nil.
// Its Body streams: the handler reads the body as it arrives, through a
// 64 KiB pipe that stops the connection from being read while it is full;
// Expect: 100-continue is answered on the first Read; a chunked body's
// trailer fields fill Trailer once Body is read to EOF. A body over
// httpcore.Config.MaxBodyBytes is refused with 413 before the handler runs
// when its Content-Length says so, and fails with *http.MaxBytesError when
// chunked. The request's context is cancelled when the client goes away
// (EOF or reset), when the server closes the connection (a forced
// Shutdown, a write timeout) and when ServeHTTP returns.
//
// The http.ResponseWriter streams: a body that fits in 64 KiB and is
// written before ServeHTTP returns gets a Content-Length, a longer or
// flushed one is chunked (closed for HTTP/1.0) unless the handler set
// Content-Length, and Write blocks while the client is slow to read. It
// sniffs Content-Type like net/http, sends 1xx responses from WriteHeader,
// sends trailers declared with the Trailer header or set with
// http.TrailerPrefix, and implements http.Flusher, http.Hijacker,
// io.ReaderFrom (with sendfile(2) for files, as http.FileServer and
// http.ServeContent copy them) and, for http.ResponseController,
// FlushError, SetReadDeadline, SetWriteDeadline and EnableFullDuplex
// (reading the body while writing the response always works).
//
// A panic in the handler is recovered as net/http does: it is logged with
// its stack (http.ErrAbortHandler silently), and the connection is closed
// after what was flushed before, so the client sees the response fail.
type Handler struct {
	h    http.Handler
	pool pool
	h2c  *h2cServer // nil without Config.H2C
}

var (
	_ httpcore.StreamingHandler    = (*Handler)(nil)
	_ httpcore.HTTP2PrefaceHandler = (*Handler)(nil)
	_ httpcore.ReusingHandler      = (*Handler)(nil)
)

// New returns a Handler serving h.
func New(h http.Handler, cfg Config) *Handler {
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkersPerProc * runtime.GOMAXPROCS(0)
	}
	a := &Handler{h: h, pool: pool{max: cfg.Workers}}
	if cfg.H2C {
		a.h2c = newH2CServer(h)
	}
	return a
}

// Shutdown tells the HTTP/2 connections (Config.H2C) to go away once their
// streams are done. It does nothing to HTTP/1 connections, which the
// server drains itself; clusterd registers it to run when a worker drains
// (httpcore.Server.RegisterOnShutdown).
func (a *Handler) Shutdown() {
	if a.h2c != nil {
		a.h2c.shutdown()
	}
}

// StreamBodies marks Handler as an httpcore.StreamingHandler.
func (a *Handler) StreamBodies() {}

// ReuseWriters marks Handler as an httpcore.ReusingHandler: nothing of the
// adapter touches an httpcore.ResponseWriter after ending its response.
func (a *Handler) ReuseWriters() {}

// HTTP2Preface reports whether connections with the HTTP/2 preface are
// served (Config.H2C).
func (a *Handler) HTTP2Preface() bool { return a.h2c != nil }

// ServeHTTP runs on the loop: it turns r into an *http.Request and queues
// the handler on the pool.
func (a *Handler) ServeHTTP(w *httpcore.ResponseWriter, r *httpcore.Request) {
	if r.Method() == "OPTIONS" && r.Target() == "*" {
		return // as net/http: 200, empty, without calling the handler
	}
	j := &job{a: a, w: w}
	req, err := newRequest(&j.ctx, r, &j.sc)
	if err != nil {
		w.SetHeader("Content-Type", "text/plain; charset=utf-8")
		w.SetHeader("Connection", "close")
		w.WriteHeader(400)
		_, _ = w.WriteString("400 Bad Request: " + err.Error() + "\n")
		return
	}
	j.req = req
	if b := r.BodyStream(); b != nil {
		j.bodyVal = body{b: b, req: req}
		j.body = &j.bodyVal
		req.Body = j.body
	}
	j.rw = newResponseWriter(j)
	w.Async()
	w.OnClientGone(j.ctx.cancel)
	if a.pool.reserve() {
		if w.RunInline(j.rw.inline) {
			return
		}
		a.pool.start(j)
		return
	}
	a.pool.submit(j)
}

// runInline serves the request on the loop's goroutine (see
// httpcore.ResponseWriter.RunInline), in a slot reserved on the pool.
func (j *job) runInline() {
	if j.run(); !j.hijacked {
		j.a.pool.leave()
	}
}

// A job is one request for the pool.
type job struct {
	a    *Handler
	w    *httpcore.ResponseWriter
	req  *http.Request
	body *body // nil without a body

	rw *responseWriter // pooled: see newResponseWriter

	// One allocation for the job, its context, body and parts of the
	// request.
	ctx     reqContext
	bodyVal body
	sc      reqScratch

	hijacked bool // the handler took the connection
}

// handler is what serves the request: the application, or the h2c
// server for a connection that turns to HTTP/2.
func (j *job) handler() http.Handler {
	if j.a.h2c != nil && j.a.h2c.wants(j.req) {
		return j.a.h2c
	}
	return j.a.h
}

// run serves the request on a pool goroutine.
func (j *job) run() {
	defer j.done(j.rw)
	j.handler().ServeHTTP(j.rw, j.req)
}

// done ends the response after the handler returned or panicked.
func (j *job) done(rw *responseWriter) {
	v := recover()
	j.ctx.cancel()
	if j.body != nil {
		_ = j.body.Close()
	}
	switch {
	case j.hijacked && v != nil && v != http.ErrAbortHandler:
		j.w.Logger().Error(fmt.Sprintf("http: panic serving %v: %v", j.req.RemoteAddr, v),
			"method", j.req.Method, "target", j.req.RequestURI, "stack", string(debug.Stack()))
	case j.hijacked:
	case v == nil:
		rw.end()
		j.rw = nil
		rw.release()
	default:
		if v != http.ErrAbortHandler {
			j.w.Logger().Error(fmt.Sprintf("http: panic serving %v: %v", j.req.RemoteAddr, v),
				"method", j.req.Method, "target", j.req.RequestURI, "stack", string(debug.Stack()))
		}
		j.w.Abort()
	}
}

// A pool runs jobs on at most max goroutines. Goroutines are started as
// jobs come; one that finds no job waiting parks for idleWorker, to take
// the next job without a goroutine being started for it, then exits, so
// an idle pool soon holds none.
type pool struct {
	mu      sync.Mutex
	queue   []*job // waiting jobs are queue[head:]
	head    int
	running int       // goroutines, parked ones included
	max     int       // bound on running
	parked  []*worker // goroutines waiting for a job, the latest last
}

// idleWorker is how long a pool goroutine waits for a job before it exits.
const idleWorker = time.Second

// A worker is a pool goroutine's mailbox while it is parked.
type worker struct {
	jobs  chan *job // one job, sent by the submit that took the worker off parked
	timer *time.Timer
}

// submit runs j now on a parked or a new goroutine if the bound allows,
// later otherwise. It never blocks.
func (p *pool) submit(j *job) {
	p.mu.Lock()
	if n := len(p.parked); n > 0 {
		w := p.parked[n-1]
		p.parked[n-1] = nil
		p.parked = p.parked[:n-1]
		p.mu.Unlock()
		w.jobs <- j
		return
	}
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

// reserve takes a slot for a job that runs outside the pool's
// goroutines, unless none is free or jobs are waiting for one.
func (p *pool) reserve() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.running >= p.max || len(p.queue) > p.head {
		return false
	}
	p.running++
	return true
}

// start runs j on a new goroutine in a slot taken by reserve.
func (p *pool) start(j *job) { go p.work(j) }

func (p *pool) work(j *job) {
	w := &worker{jobs: make(chan *job, 1)}
	for ; j != nil; j = p.next(w) {
		if j.run(); j.hijacked {
			return // its slot was given up at Hijack
		}
	}
}

// dequeue takes the oldest waiting job off the queue, or returns nil when
// none waits. p.mu must be held.
func (p *pool) dequeue() *job {
	if p.head >= len(p.queue) {
		return nil
	}
	j := p.queue[p.head]
	p.queue[p.head] = nil
	p.head++
	return j
}

// next returns the oldest waiting job, or waits for one to be submitted;
// it returns nil after retiring the calling goroutine.
func (p *pool) next(w *worker) *job {
	p.mu.Lock()
	if j := p.dequeue(); j != nil {
		p.mu.Unlock()
		return j
	}
	clear(p.queue)
	p.queue, p.head = p.queue[:0], 0
	p.parked = append(p.parked, w)
	p.mu.Unlock()
	if w.timer == nil {
		w.timer = time.NewTimer(idleWorker)
	} else {
		w.timer.Reset(idleWorker)
	}
	select {
	case j := <-w.jobs:
		w.timer.Stop()
		return j
	case <-w.timer.C:
	}
	p.mu.Lock()
	if i := slices.Index(p.parked, w); i >= 0 {
		p.parked = slices.Delete(p.parked, i, i+1)
		p.running--
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return <-w.jobs // a submit took w off parked just now: its job is coming
}

// leave gives up the calling goroutine's slot, for a handler that goes on
// with a hijacked connection: a waiting job gets a goroutine of its own.
func (p *pool) leave() {
	p.mu.Lock()
	if j := p.dequeue(); j != nil {
		p.mu.Unlock()
		go p.work(j)
		return
	}
	p.running--
	p.mu.Unlock()
}
