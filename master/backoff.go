package master

import "time"

// Respawn back-off: the first unexpected exit of a worker that had been
// running is replaced at once; each further exit in a row doubles the wait,
// from backoffBase up to backoffMax. A worker that stays up for
// stablePeriod resets its slot's count.
const (
	backoffBase  = 100 * time.Millisecond
	backoffMax   = 15 * time.Second
	stablePeriod = 10 * time.Second
)

// slot is one place in the pool. Its worker changes over restarts and
// rolls; its crash count and restart total outlive them.
type slot struct {
	id       int
	worker   *worker // the worker serving this slot; nil while it is replaced
	crashes  int     // unexpected exits in a row
	restarts int     // workers started in this slot after the first
	respawn  timer
}

// crashed records an unexpected exit of a worker that ran for uptime and
// returns how long to wait before starting its replacement.
func (s *slot) crashed(uptime time.Duration) time.Duration {
	if uptime >= stablePeriod {
		s.crashes = 0
	}
	s.crashes++
	return backoff(s.crashes)
}

func backoff(crashes int) time.Duration {
	if crashes <= 1 {
		return 0
	}
	d := backoffBase
	for i := 2; i < crashes && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}
