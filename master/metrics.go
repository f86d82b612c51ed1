package master

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// poolStats is the supervisor's account of the workers' traffic: the last
// report of each live worker and, by slot, the sum of the final reports of
// the workers that are gone, so that a slot's counters never go backwards
// when its worker is replaced. Only the supervisor goroutine touches it;
// readers get snapshots (see publish).
type poolStats struct {
	live        map[*worker]*ipc.WorkerStats
	retired     map[int]*ipc.WorkerStats // by slot
	exits       map[int]*[2]uint64       // by slot: [0] asked to go, [1] failed
	rolls       [2]uint64                // rolling restarts: [0] done, [1] failed
	recycled    map[string]uint64        // workers replaced for a limit, by limit
	shutting    atomic.Bool              // a stop signal came: not ready any more
	handedOver  atomic.Bool              // a new master took over: ready, whatever this pool does
	passRefused atomic.Uint64            // passed connections the master could not receive (receive goroutines)
	latest      atomic.Pointer[snapshot]
	publishedAt time.Time
}

func newPoolStats() *poolStats {
	return &poolStats{
		live:     map[*worker]*ipc.WorkerStats{},
		retired:  map[int]*ipc.WorkerStats{},
		exits:    map[int]*[2]uint64{},
		recycled: map[string]uint64{},
	}
}

// heartbeat records a worker's report.
func (p *poolStats) heartbeat(w *worker, st *ipc.WorkerStats) {
	if st != nil {
		p.live[w] = st
	}
}

// retire moves the last report of a worker that exited into its slot's sums.
func (p *poolStats) retire(w *worker) {
	if st := p.live[w]; st != nil {
		sum := p.retired[w.slot]
		if sum == nil {
			sum = &ipc.WorkerStats{}
			p.retired[w.slot] = sum
		}
		sum.AddCounters(st)
		delete(p.live, w)
	}
	e := p.exits[w.slot]
	if e == nil {
		e = new([2]uint64)
		p.exits[w.slot] = e
	}
	if w.state == Failed {
		e[1]++
	} else {
		e[0]++
	}
}

// rollDone counts a finished rolling restart.
func (p *poolStats) rollDone(ok bool) {
	if ok {
		p.rolls[0]++
	} else {
		p.rolls[1]++
	}
}

// snapshot is the state of the pool as the supervisor last published it,
// for readers on other goroutines (the admin server). It is never changed
// once published.
type snapshot struct {
	taken      time.Time
	desired    int // pool size the master maintains
	generation int
	rolling    bool
	stopping   bool // the workers are draining
	workers    []workerSnap
	slots      []slotSnap
	retired    map[int]ipc.WorkerStats // by slot
	exits      map[int][2]uint64       // by slot
	rolls      [2]uint64
	recycled   map[string]uint64
}

type workerSnap struct {
	slot, pid, generation int
	state                 State
	heartbeatAge          time.Duration
	uptime                time.Duration
	stats                 ipc.WorkerStats // zero before its first report
}

type slotSnap struct {
	id, restarts, crashes int
	backingOff            bool // its worker crashed; the replacement waits
}

// publish makes the current state of the pool the snapshot readers see.
func (m *Master) publish() {
	p, now := m.stats, m.now()
	s := &snapshot{
		taken: now, desired: len(m.slots), generation: m.generation,
		rolling: m.roll != nil, stopping: m.stopping,
		retired: make(map[int]ipc.WorkerStats, len(p.retired)),
		exits:   make(map[int][2]uint64, len(p.exits)),
		rolls:   p.rolls, recycled: make(map[string]uint64, len(p.recycled)),
	}
	for w := range m.workers {
		ws := workerSnap{slot: w.slot, pid: w.pid, generation: w.generation, state: w.state,
			heartbeatAge: now.Sub(w.lastTick), uptime: now.Sub(w.started)}
		if st := p.live[w]; st != nil {
			ws.stats = st.Clone()
		}
		s.workers = append(s.workers, ws)
	}
	sort.Slice(s.workers, func(i, j int) bool {
		a, b := s.workers[i], s.workers[j]
		return a.slot < b.slot || a.slot == b.slot && a.pid < b.pid
	})
	for _, sl := range m.slots {
		s.slots = append(s.slots, slotSnap{id: sl.id, restarts: sl.restarts, crashes: sl.crashes, backingOff: sl.respawn != nil})
	}
	sort.Slice(s.slots, func(i, j int) bool { return s.slots[i].id < s.slots[j].id })
	for id, st := range p.retired {
		s.retired[id] = st.Clone()
	}
	for id, e := range p.exits {
		s.exits[id] = *e
	}
	for k, v := range p.recycled {
		s.recycled[k] = v
	}
	p.latest.Store(s)
	p.publishedAt = now
}

// ready reports whether the pool takes traffic: not stopping, at least one
// worker ready.
func (s *snapshot) ready() bool {
	if s.stopping {
		return false
	}
	for _, w := range s.workers {
		if w.state == Ready {
			return true
		}
	}
	return false
}

// bySlot sums, per slot, the counters of the workers gone and the reports
// (counters and gauges) of those alive.
func (s *snapshot) bySlot() map[int]*ipc.WorkerStats {
	out := map[int]*ipc.WorkerStats{}
	get := func(id int) *ipc.WorkerStats {
		if out[id] == nil {
			out[id] = &ipc.WorkerStats{}
		}
		return out[id]
	}
	for id, st := range s.retired {
		get(id).AddCounters(&st)
	}
	for i := range s.workers {
		w := &s.workers[i]
		get(w.slot).AddCounters(&w.stats)
		get(w.slot).AddGauges(&w.stats)
	}
	return out
}
