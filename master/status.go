package master

import (
	"os"
	"sort"
)

// Status is what `clusterd ctl status --json` prints.
type Status struct {
	Master  MasterStatus   `json:"master"`
	Workers []WorkerStatus `json:"workers"`
}

// MasterStatus describes the master and its pool.
type MasterStatus struct {
	PID        int              `json:"pid"`
	Generation int              `json:"generation"`
	Sched      string           `json:"sched"`
	Workers    int              `json:"workers"` // the pool size it maintains
	Rolling    bool             `json:"rolling"`
	Upgrading  bool             `json:"upgrading"` // a new master is starting (ctl upgrade)
	Stopping   bool             `json:"stopping"`
	Listeners  []ListenerStatus `json:"listeners"`
	Uptime     float64          `json:"uptime_seconds"`
}

// WorkerStatus describes one live worker process. Requests and
// Connections are as of its last heartbeat (at most a second old).
type WorkerStatus struct {
	ID          int     `json:"id"`
	PID         int     `json:"pid"`
	Generation  int     `json:"generation"`
	State       string  `json:"state"`
	Requests    uint64  `json:"requests"`
	Connections int64   `json:"connections"`
	Restarts    int     `json:"restarts"`
	Uptime      float64 `json:"uptime_seconds"`
	InFlight    int64   `json:"in_flight"` // as of its last heartbeat
	RSS         uint64  `json:"rss_bytes"` // resident memory, as of its last heartbeat
}

func (m *Master) status() *Status {
	now := m.now()
	st := &Status{Master: MasterStatus{
		PID:        os.Getpid(),
		Generation: m.generation,
		Sched:      m.cfg.Sched,
		Workers:    len(m.slots),
		Rolling:    m.roll != nil,
		Upgrading:  m.upgrade != nil,
		Stopping:   m.stopping,
		Uptime:     now.Sub(m.started).Seconds(),
	}}
	st.Master.Listeners = m.listeners.status()
	st.Workers = []WorkerStatus{}
	for w := range m.workers {
		ws := WorkerStatus{
			ID: w.slot, PID: w.pid, Generation: w.generation, State: w.state.String(),
			Requests: w.requests, Connections: w.conns, Uptime: now.Sub(w.started).Seconds(),
		}
		if s := m.slots[w.slot]; s != nil {
			ws.Restarts = s.restarts
		}
		if r := m.stats.live[w]; r != nil {
			ws.InFlight, ws.RSS = r.InFlight, r.RSS
		}
		st.Workers = append(st.Workers, ws)
	}
	sort.Slice(st.Workers, func(i, j int) bool {
		a, b := st.Workers[i], st.Workers[j]
		return a.ID < b.ID || a.ID == b.ID && a.PID < b.PID
	})
	return st
}
