package httpcore

import "time"

// DurationBuckets are the upper bounds, in seconds, of the request-duration
// histogram in Stats.Duration; the last bucket of Stats.Duration counts
// the rest (+Inf).
var DurationBuckets = [...]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// durationBounds are DurationBuckets in nanoseconds, for the loop.
var durationBounds = func() (b [len(DurationBuckets)]int64) {
	for i, s := range DurationBuckets {
		b[i] = int64(s * float64(time.Second))
	}
	return b
}()

// Kinds of refused requests counted in Stats.Refused, by the status the
// engine answered them with.
const (
	RefusedMalformed    = iota // 400: a request that breaks the grammar or framing rules
	RefusedTimeout             // 408: the request did not arrive in time
	RefusedBodyTooLarge        // 413
	RefusedURITooLong          // 414
	RefusedExpectation         // 417: an Expect other than 100-continue
	RefusedHeadTooLarge        // 431: head, trailer or field count over the limit
	RefusedUnsupported         // 501, 505: transfer coding or HTTP version
	numRefused
)

// RefusedKinds names the kinds of refused requests, indexed like Stats.Refused.
var RefusedKinds = [numRefused]string{
	RefusedMalformed:    "malformed",
	RefusedTimeout:      "timeout",
	RefusedBodyTooLarge: "body_too_large",
	RefusedURITooLong:   "uri_too_long",
	RefusedExpectation:  "expectation",
	RefusedHeadTooLarge: "head_too_large",
	RefusedUnsupported:  "unsupported",
}

// refusedKind maps the status of an engine error response to its kind.
func refusedKind(status int) int {
	switch status {
	case 408:
		return RefusedTimeout
	case 413:
		return RefusedBodyTooLarge
	case 414:
		return RefusedURITooLong
	case 417:
		return RefusedExpectation
	case 431:
		return RefusedHeadTooLarge
	case 501, 505:
		return RefusedUnsupported
	}
	return RefusedMalformed
}

// Counters are the loop's running totals. The loop owns them and updates
// them without synchronization; it publishes a copy every statsEvery of
// loop time and when it ends (see Server.Stats).
type Counters struct {
	Responses [6]uint64 // by status class: [1] 1xx … [5] 5xx; [0] other statuses
	Accepted  uint64    // connections accepted (or handed over with ServeConn, unless ConnInfo.Idle)
	GivenAway uint64    // idle connections given to another process (AcceptPasser.Give)
	BytesIn   uint64    // bytes read from clients
	BytesOut  uint64    // bytes written to clients, file bodies included
	// Duration counts requests by the time from the request being complete
	// to its response being queued, per DurationBuckets (+Inf last). It is
	// measured on the loop's clock, which advances once per iteration: a
	// handler that answers at once counts as 0.
	Duration    [len(DurationBuckets) + 1]uint64
	DurationSum time.Duration
	Refused     [numRefused]uint64 // refused requests by kind (RefusedKinds)
}

// Gauges describe the loop's connections when the copy was published.
type Gauges struct {
	Open     int64 // connections open
	Idle     int64 // keep-alive connections between requests
	InFlight int64 // requests whose handler answers off the loop and has not ended
}

// statsEvery is how often, in loop time, the loop publishes its counters.
const statsEvery = 100 * time.Millisecond

// observe counts a response of status queued took nanoseconds of loop
// time after its request was complete.
func (c *Counters) observe(status int, took int64) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	c.Responses[class]++
	i := 0
	for i < len(durationBounds) && took > durationBounds[i] {
		i++
	}
	c.Duration[i]++
	c.DurationSum += time.Duration(took)
}

// refused counts a request the engine answered with status itself.
func (c *Counters) refused(status int) {
	c.Refused[refusedKind(status)]++
	c.observe(status, 0)
}

// publishStats hands the server a copy of the counters and the
// connections' gauges, if statsEvery has passed since the last one or
// force is set.
func (l *loop) publishStats(force bool) {
	if !force && l.now-l.statsAt < int64(statsEvery) {
		return
	}
	l.statsAt = l.now
	var g Gauges
	for _, c := range l.conns {
		if c == nil {
			continue
		}
		g.Open++
		if c.idle() {
			g.Idle++
		}
		if c.async != nil {
			g.InFlight++
		}
	}
	s := l.s
	s.statsMu.Lock()
	s.counters, s.gauges = l.st, g
	s.statsMu.Unlock()
}

// A ResponseRecord describes one response for Config.OnResponse.
type ResponseRecord struct {
	Time   time.Time // when the response was queued, on the loop's clock
	Remote string    // the client's "ip:port"
	// RequestLine is "METHOD target HTTP/1.x"; empty for a request the
	// engine refused (malformed, too large, too slow).
	RequestLine []byte
	Status      int
	BodyBytes   int64         // body bytes the handler wrote (or sent as a file)
	Duration    time.Duration // as in Counters.Duration
}

// logResponse calls Config.OnResponse for a response of status queued on
// c; w is nil for an error response of the engine.
func (l *loop) logResponse(c *conn, w *ResponseWriter, status int) {
	f := l.cfg.OnResponse
	if f == nil {
		return
	}
	rec := ResponseRecord{Time: l.epoch.Add(time.Duration(l.now)), Remote: peerAddr(c.fd), Status: status}
	if w != nil {
		rec.RequestLine, rec.Duration = w.reqLine, time.Duration(l.now-w.start)
		rec.BodyBytes = w.written
		if w.flags&rwSendFile != 0 && w.length > 0 {
			rec.BodyBytes = w.length
		}
	}
	f(&rec)
}
