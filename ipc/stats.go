package ipc

// WorkerStats is what a worker reports about its traffic with every
// heartbeat and once more, final, after it has drained. Counters only
// grow over a worker's life; the gauges describe it at the time of the
// report.
type WorkerStats struct {
	// Responses counts responses by status class: [1] 1xx … [5] 5xx,
	// [0] any other status.
	Responses [6]uint64 `json:"responses"`
	Accepted  uint64    `json:"accepted,omitempty"`   // connections accepted or handed over
	GivenAway uint64    `json:"given_away,omitempty"` // idle connections given to other workers (reuseport)
	BytesIn   uint64    `json:"bytes_in,omitempty"`   // read from clients
	BytesOut  uint64    `json:"bytes_out,omitempty"`  // written to clients
	// Duration counts requests by duration, one count per bucket of the
	// engine's duration histogram, +Inf last; DurationSum is their total
	// in seconds.
	Duration    []uint64 `json:"duration,omitempty"`
	DurationSum float64  `json:"duration_sum,omitempty"`
	// Refused counts requests the engine refused, by kind.
	Refused map[string]uint64 `json:"refused,omitempty"`

	Open     int64  `json:"open,omitempty"`      // connections open
	Idle     int64  `json:"idle,omitempty"`      // of which idle keep-alive connections
	InFlight int64  `json:"in_flight,omitempty"` // requests being answered off the loop
	RSS      uint64 `json:"rss,omitempty"`       // resident memory, bytes
	Final    bool   `json:"final,omitempty"`     // the loop has ended: nothing more will count

	AccessLogDropped uint64 `json:"access_log_dropped,omitempty"` // lines dropped: the log's queue was full
}

// Requests is the number of responses of every class.
func (s *WorkerStats) Requests() uint64 {
	var n uint64
	for _, c := range s.Responses {
		n += c
	}
	return n
}

// AddCounters adds o's counters (not its gauges) to s.
func (s *WorkerStats) AddCounters(o *WorkerStats) {
	for i, c := range o.Responses {
		s.Responses[i] += c
	}
	s.Accepted += o.Accepted
	s.GivenAway += o.GivenAway
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	if len(s.Duration) < len(o.Duration) {
		s.Duration = append(s.Duration, make([]uint64, len(o.Duration)-len(s.Duration))...)
	}
	for i, c := range o.Duration {
		s.Duration[i] += c
	}
	s.DurationSum += o.DurationSum
	s.AccessLogDropped += o.AccessLogDropped
	for k, c := range o.Refused {
		if s.Refused == nil {
			s.Refused = map[string]uint64{}
		}
		s.Refused[k] += c
	}
}

// AddGauges adds o's gauges to s.
func (s *WorkerStats) AddGauges(o *WorkerStats) {
	s.Open += o.Open
	s.Idle += o.Idle
	s.InFlight += o.InFlight
	s.RSS += o.RSS
}

// Clone returns a copy of s that shares nothing with it.
func (s *WorkerStats) Clone() WorkerStats {
	c := *s
	c.Duration = append([]uint64(nil), s.Duration...)
	if s.Refused != nil {
		c.Refused = make(map[string]uint64, len(s.Refused))
		for k, v := range s.Refused {
			c.Refused[k] = v
		}
	}
	return c
}
