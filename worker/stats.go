package worker

import (
	"bytes"
	"os"
	"strconv"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/ipc"
)

// report turns the event loop's statistics into what travels to the master.
func (p *proc) report(st httpcore.Stats) *ipc.WorkerStats {
	c, g := &st.Counters, &st.Gauges
	ws := &ipc.WorkerStats{
		Responses:   c.Responses,
		Accepted:    c.Accepted,
		GivenAway:   c.GivenAway,
		BytesIn:     c.BytesIn,
		BytesOut:    c.BytesOut,
		Duration:    append([]uint64(nil), c.Duration[:]...),
		DurationSum: c.DurationSum.Seconds(),
		Open:        g.Open,
		Idle:        g.Idle,
		InFlight:    g.InFlight,
		RSS:         residentBytes(),
	}
	if p.access != nil {
		ws.AccessLogDropped = p.access.Dropped()
	}
	for i, n := range c.Refused {
		if n > 0 {
			if ws.Refused == nil {
				ws.Refused = map[string]uint64{}
			}
			ws.Refused[httpcore.RefusedKinds[i]] = n
		}
	}
	return ws
}

var pageSize = uint64(os.Getpagesize())

// residentBytes is this process's resident set size, or 0 if it cannot be read.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * pageSize
}
