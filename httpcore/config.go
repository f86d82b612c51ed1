package httpcore

import (
	"math"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config holds a Server's limits and timeouts. Zero fields take the defaults
// documented on each field.
type Config struct {
	IdleTimeout    time.Duration // keep-alive idle time between requests; default 5s
	HeaderTimeout  time.Duration // time to receive a request head from its first byte (from accept for the first); default 10s
	RequestTimeout time.Duration // time to receive a whole request incl. body, from its first byte; default 60s
	WriteTimeout   time.Duration // longest wait for a client to accept more response bytes; default 60s
	MaxHeaderBytes int           // request line plus header fields; default 16 KiB, over it -> 431
	MaxHeaderCount int           // header (and trailer) fields per request; default 100, over it -> 431
	MaxBodyBytes   int64         // decoded request body; default 1 MiB, over it -> 413
	Logger         hclog.Logger  // optional; hclog.NewNullLogger() when nil
	// OnResponse, if set, is called on the loop for every response as it
	// is queued, error responses of the engine included (an access log).
	// It must not block; the record is valid only during the call.
	OnResponse func(*ResponseRecord)
	// AcceptGate, if set, spreads new connections over the processes that
	// accept on the same listening sockets: it is told of every connection
	// the loop opens and closes, and asked before each accept.
	AcceptGate AcceptGate
}

// AcceptGate decides when a loop lets the other processes on its
// listening sockets take the next connections. Its methods are called on
// the loop goroutine.
type AcceptGate interface {
	// Conns adds delta (1 or -1) to the open connections.
	Conns(delta int)
	// Accepted counts a connection accepted from a listener.
	Accepted()
	// Hold is asked before each accept: a positive duration takes the
	// loop's listeners out of its epoll set for that long. resumed says
	// the loop held until just now and its listeners were readable at
	// once when it took them back.
	Hold(resumed bool) time.Duration
	// Holding is asked at every turn of the loop while it holds: false
	// ends the hold at once.
	Holding() bool
	// Baton is a descriptor the processes share, an eventfd, or -1. The
	// loop watches it as it watches its listeners (EPOLLEXCLUSIVE: one
	// waiting process is woken) and accepts when it is woken by it; a
	// loop that holds writes to it, so that the connection whose wake-up
	// it leaves is taken by another process at once.
	Baton() int
}

// An AcceptPasser is an AcceptGate that may give idle keep-alive
// connections to another process to serve. It suits listeners each
// process has of its own (SO_REUSEPORT): holding off would leave
// connections waiting in the holder's queue, and the kernel, not the
// processes, decides which queue a connection joins; such a gate's Hold
// returns 0. Its methods are called on the loop goroutine and must not
// block.
type AcceptPasser interface {
	AcceptGate
	// Shed is asked every few milliseconds: how many idle connections
	// the loop should give to Give now.
	Shed() int
	// Give takes connection fd, which the loop has let go of: one it
	// accepted from a listener, idle, with nothing read from it that is
	// not served and nothing left to write, so that whoever serves it
	// next reads its next request from the socket. false: it cannot, and
	// the loop serves fd again.
	Give(fd int) bool
}

// Defaults for zero Config fields.
const (
	DefaultIdleTimeout    = 5 * time.Second
	DefaultHeaderTimeout  = 10 * time.Second
	DefaultRequestTimeout = 60 * time.Second
	DefaultWriteTimeout   = 60 * time.Second
	DefaultMaxHeaderBytes = 16 << 10
	DefaultMaxHeaderCount = 100
	DefaultMaxBodyBytes   = 1 << 20
)

// Engine constants that are not worth a knob.
const (
	readBufferSize = 64 << 10  // per-loop shared read buffer
	minReadSpace   = 16 << 10  // room a conn input buffer grows by
	minReadRoom    = 1 << 10   // less room than this in a conn input buffer makes it grow
	inPoolSize     = 4 << 10   // pooled per-conn input buffers
	outPoolSize    = 16 << 10  // pooled per-conn output buffers
	poolMaxFree    = 256       // buffers kept per pool
	highWater      = 256 << 10 // pending output above which a conn is not read
	maxScratchBody = 64 << 10  // larger response-body scratch buffers are not kept
	lingerTimeout  = 2 * time.Second
	// drainIdleGrace is how long a draining loop keeps a connection open
	// that has no request in progress. Closing an idle keep-alive
	// connection races with the client's next request, which then fails;
	// under load the next request arrives well within the grace and is
	// answered with "Connection: close", so no request is lost.
	drainIdleGrace = time.Second
	lingerMaxBytes = 1 << 20
	acceptBackoff  = 100 * time.Millisecond
	// shedEvery is how often a loop with an AcceptPasser asks it whether
	// to give idle connections away (AcceptPasser.Shed): seldom enough
	// that the counts it decides on have caught up with the last ones.
	shedEvery = 20 * time.Millisecond
	// maxAcceptsBatch bounds the accepts per listener wake-up, and after
	// rearmEvery accepts an EPOLLEXCLUSIVE listener is registered again,
	// which moves this loop to the back of the kernel's wake-up order. With
	// 64 and 16, one worker took all of a burst of 64 new keep-alive
	// connections in 1 of 6 runs (4 workers on 2 busy cores) and only 2 of 6
	// came out even; with 4 and 4, 4 of 6 came out even, no worker was left
	// without connections, and new-connection throughput was the same
	// (wrk -H 'Connection: close', 4 interleaved rounds: medians 17.0k and
	// 17.1k req/s). nginx's multi_accept off is 1 per wake-up.
	maxAcceptsBatch = 4
	rearmEvery      = 4
	maxPollWait     = time.Second
	// acceptSweep is how often a loop with an AcceptGate tries to accept
	// when no wake-up came: one that went to a stopped process is lost.
	acceptSweep  = 200 * time.Millisecond
	maxChunkLine = 4096 // chunk-size line incl. extensions
	maxMethodLen = 32
)

// withDefaults returns cfg with zero fields replaced by defaults.
func (cfg Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.IdleTimeout, DefaultIdleTimeout)
	def(&cfg.HeaderTimeout, DefaultHeaderTimeout)
	def(&cfg.RequestTimeout, DefaultRequestTimeout)
	def(&cfg.WriteTimeout, DefaultWriteTimeout)
	if cfg.MaxHeaderBytes <= 0 {
		cfg.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if cfg.MaxHeaderCount <= 0 {
		cfg.MaxHeaderCount = DefaultMaxHeaderCount
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return cfg
}

// limits is the parser's view of a Config.
type limits struct {
	maxHeader  int   // head bytes
	maxFields  int   // header or trailer fields
	maxBody    int64 // decoded body bytes
	maxChunked int64 // encoded chunked body bytes incl. trailers
	maxInput   int   // a connection's input buffer
}

func newLimits(cfg Config) limits {
	lim := limits{
		maxHeader: min(cfg.MaxHeaderBytes, 1<<30),
		maxFields: cfg.MaxHeaderCount,
		maxBody:   min(cfg.MaxBodyBytes, 1<<40), // bodies are held in memory
	}
	// Chunk framing may add at most as many bytes as the body itself.
	lim.maxChunked = 2*lim.maxBody + int64(lim.maxHeader)
	// The most a request can take: head, chunks, last-chunk line, trailers.
	lim.maxInput = int(min(3*int64(lim.maxHeader)+lim.maxChunked+maxChunkLine, math.MaxInt))
	return lim
}
