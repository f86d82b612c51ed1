package master

import (
	"sync"
	"time"
)

// burst limits a repeating log line: the first of a burst is logged, then
// at most one per interval, each saying how many it stands for. Safe for
// concurrent use.
type burst struct {
	every time.Duration
	mu    sync.Mutex
	last  time.Time
	quiet int // left out since the last line
}

func newBurst(every time.Duration) *burst { return &burst{every: every} }

// allow reports whether a line may be logged at now, and how many were
// left out before it.
func (b *burst) allow(now time.Time) (bool, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() && now.Sub(b.last) < b.every {
		b.quiet++
		return false, 0
	}
	n := b.quiet
	b.last, b.quiet = now, 0
	return true, n
}

// acceptRetry is the wait between failed accepts, as net/http's Server
// does it: 5ms doubling to 1s, reset by a successful accept.
type acceptRetry struct {
	d   time.Duration
	max time.Duration // 0: acceptRetryMax
}

const (
	acceptRetryMin = 5 * time.Millisecond
	acceptRetryMax = time.Second
)

func (r *acceptRetry) next() time.Duration {
	limit := r.max
	if limit == 0 {
		limit = acceptRetryMax
	}
	r.d = min(max(2*r.d, acceptRetryMin), limit)
	return r.d
}

func (r *acceptRetry) reset() { r.d = 0 }

// acceptFailed handles a failed accept: it logs msg once per burst (b)
// and waits retry's next delay. It reports false if the master finished
// meanwhile.
func (m *Master) acceptFailed(b *burst, retry *acceptRetry, msg string, err error) bool {
	if ok, n := b.allow(m.now()); ok {
		m.log.Error(msg, "error", err, "failures_not_logged", n)
	}
	select {
	case <-time.After(retry.next()):
		return true
	case <-m.done:
		return false
	}
}
