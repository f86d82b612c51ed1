package master

import (
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/ipc"
)

// fakeSpawner starts fake workers: a process that ends when the test says,
// a real ipc channel whose worker end the test holds, an empty stderr.
type fakeSpawner struct {
	mu    sync.Mutex
	next  int
	procs []*fakeProc
}

type fakeProc struct {
	pid    int
	end    chan struct{}
	once   sync.Once
	peer   *ipc.Conn // the worker's end of the channel
	stderr *os.File  // the worker's end of its stderr
}

func (p *fakeProc) Pid() int                        { return p.pid }
func (p *fakeProc) Signal(sig syscall.Signal) error { return nil }
func (p *fakeProc) Wait() error                     { <-p.end; return nil }
func (p *fakeProc) exit() {
	p.once.Do(func() { close(p.end); _ = p.peer.Close(); _ = p.stderr.Close() })
}

func (f *fakeSpawner) spawn(spec spawnSpec) (spawned, error) {
	parent, child, err := ipc.Socketpair()
	if err != nil {
		return spawned{}, err
	}
	conn, err := ipc.NewConn(parent)
	_ = parent.Close()
	if err != nil {
		return spawned{}, err
	}
	peer, err := ipc.NewConn(child)
	_ = child.Close()
	if err != nil {
		return spawned{}, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return spawned{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	p := &fakeProc{pid: 100 + f.next, end: make(chan struct{}), peer: peer, stderr: w}
	f.procs = append(f.procs, p)
	return spawned{proc: p, conn: conn, stderr: r}, nil
}

func (f *fakeSpawner) exitAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.procs {
		p.exit()
	}
}

// recyclePool is a master with n ready fake workers, driven by the test
// as its supervisor goroutine.
func recyclePool(t *testing.T, n int, cfg Config) (*Master, []*worker) {
	sp := &fakeSpawner{}
	cfg.Logger = hclog.NewNullLogger()
	m := newMaster(cfg, sp, realClock{})
	t.Cleanup(func() { close(m.done); sp.exitAll(); m.wg.Wait() })
	var ws []*worker
	for id := 1; id <= n; id++ {
		s := &slot{id: id}
		m.slots[id] = s
		m.fill(s)
		ready(s.worker)
		ws = append(ws, s.worker)
	}
	return m, ws
}

func ready(w *worker) { w.setState(Online); w.setState(Ready) }

func heartbeat(m *Master, w *worker, requests uint64) {
	m.stats.heartbeat(w, &ipc.WorkerStats{Responses: [6]uint64{2: requests}})
	m.checkLimits(w)
}

// TestRecyclingOneAtATime: workers past --max-requests are replaced one
// at a time, each after its replacement is ready.
func TestRecyclingOneAtATime(t *testing.T) {
	m, ws := recyclePool(t, 3, Config{MaxRequests: 100, Workers: 3})
	heartbeat(m, ws[0], 99) // one short: stays
	if m.roll != nil {
		t.Fatal("recycled below the limit")
	}
	for _, w := range ws {
		heartbeat(m, w, 100)
	}
	heartbeat(m, ws[0], 150) // again, while it is replaced: not queued again
	if r := m.roll; r == nil || r.recycle != LimitRequests || r.slot.id != 1 || len(m.recycle.queue) != 2 {
		t.Fatalf("roll %+v, queue %d", r, len(m.recycle.queue))
	}
	for i, old := range ws {
		r := m.roll
		if r == nil || r.recycle == "" || r.slot.id != old.slot {
			t.Fatalf("step %d: roll %+v", i, r)
		}
		if old.state != Ready {
			t.Fatalf("step %d: worker %d is %v before its replacement is ready", i, old.slot, old.state)
		}
		next := r.next
		if next.generation != 0 {
			t.Errorf("a recycled worker's replacement has generation %d", next.generation)
		}
		ready(next)
		m.rollReady(next)
		if old.state != Draining {
			t.Errorf("step %d: the recycled worker is %v", i, old.state)
		}
	}
	if m.roll != nil || m.stats.recycled[LimitRequests] != 3 {
		t.Errorf("roll %+v, recycled %d", m.roll, m.stats.recycled[LimitRequests])
	}
}

// TestReloadDuringRecycling: a reload asked for while a worker is
// recycled is not refused: it runs when the recycling ends, before the
// recyclings still queued, which it makes moot.
func TestReloadDuringRecycling(t *testing.T) {
	m, ws := recyclePool(t, 2, Config{MaxRequests: 100, Workers: 2})
	for _, w := range ws {
		heartbeat(m, w, 100)
	}
	replies := make(chan response, 1)
	if err := m.startRoll(replies); err != nil {
		t.Fatalf("reload during recycling: %v", err)
	}
	next := m.roll.next
	ready(next)
	m.rollReady(next)
	r := m.roll
	if r == nil || r.recycle != "" || r.generation != 1 || len(r.waiters) != 1 {
		t.Fatalf("the reload asked for meanwhile: %+v", r)
	}
	for m.roll != nil {
		next := m.roll.next
		ready(next)
		m.rollReady(next)
	}
	if resp := <-replies; !resp.OK {
		t.Errorf("reload: %+v", resp)
	}
	if len(m.recycle.queue) != 0 || m.stats.recycled[LimitRequests] != 1 || m.stats.rolls[0] != 1 {
		t.Errorf("queue %d, recycled %d, rolls %v", len(m.recycle.queue), m.stats.recycled[LimitRequests], m.stats.rolls)
	}
}

// TestRecyclingSkipsReplacedWorkers: a queued worker that a rolling
// restart replaced first is not recycled again.
func TestRecyclingSkipsReplacedWorkers(t *testing.T) {
	m, ws := recyclePool(t, 2, Config{MaxRSS: 1 << 20, Workers: 2})
	m.stats.heartbeat(ws[0], &ipc.WorkerStats{RSS: 2 << 20})
	m.checkLimits(ws[0])
	m.stats.heartbeat(ws[1], &ipc.WorkerStats{RSS: 2 << 20})
	m.checkLimits(ws[1])
	if m.roll == nil || m.roll.recycle != LimitRSS || len(m.recycle.queue) != 1 {
		t.Fatalf("roll %+v", m.roll)
	}
	m.slots[2].worker = nil // replaced meanwhile
	next := m.roll.next
	ready(next)
	m.rollReady(next)
	if m.roll != nil || len(m.recycle.queue) != 0 || m.stats.recycled[LimitRSS] != 1 {
		t.Errorf("after the first: roll %+v, queue %d, recycled %v", m.roll, len(m.recycle.queue), m.stats.recycled)
	}
}
