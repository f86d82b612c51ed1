// Package scoreboard is the shared memory through which the workers that
// accept on one listening socket see how many connections each holds and
// has accepted lately, so that one clearly over its share lets the others
// take the next ones (nginx's accept_disabled, over processes), and
// through which workers with a socket each (SO_REUSEPORT) see when to
// give idle connections away.
//
// The master creates the board (a memfd) and gives each worker process a
// slot of its own, one cache line: the worker's open connections, its
// accepts, the accept window it is in and its accepts when it entered it,
// and until when it holds off accepting, which the worker keeps; and
// whether it takes part, which the master keeps (ready workers take part,
// draining ones do not). The master clears a slot when its worker exits.
package scoreboard

import (
	"fmt"
	"os"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	_ "github.com/clusterd/clusterd/internal/linuxonly"
	"github.com/clusterd/clusterd/internal/rawfd"
)

// Slots is how many worker processes a board has room for; workers beyond
// it go without one (and accept as if alone).
const Slots = 255

const lineSize = 64 // one slot per cache line: no false sharing

// size is the board's bytes: a header line (the slots in use), then the slots.
const size = (Slots + 1) * lineSize

type slot struct {
	open     atomic.Int64
	accepted atomic.Uint64
	active   atomic.Int64
	// The accept window the worker is in (wall-clock time / AcceptWindow,
	// the same for every process) and its accepts when it entered it.
	window     atomic.Int64
	windowBase atomic.Uint64
	// Until when (UnixNano) the worker holds off accepting; 0: it does
	// not. The others do not wait for a worker that holds.
	holdUntil atomic.Int64
}

type header struct {
	used atomic.Int64 // 1 + the highest slot ever given out
}

// Board is a mapping of the shared memory.
type Board struct {
	mem []byte
}

// NewBaton returns the eventfd through which a worker that holds wakes
// another to accept in its place (httpcore.AcceptGate.Baton).
func NewBaton() (*os.File, error) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, os.NewSyscallError("eventfd", err)
	}
	return os.NewFile(uintptr(fd), "baton"), nil
}

// Create makes a new board and returns its memory file (close-on-exec; the
// master passes it to each worker it starts) and the master's mapping.
func Create() (*os.File, *Board, error) {
	fd, err := unix.MemfdCreate("clusterd-scoreboard", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, os.NewSyscallError("memfd_create", err)
	}
	f := os.NewFile(uintptr(fd), "scoreboard")
	if err := unix.Ftruncate(fd, size); err != nil {
		_ = f.Close()
		return nil, nil, os.NewSyscallError("ftruncate", err)
	}
	b, err := mapFD(fd)
	if err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	return f, b, nil
}

// Open maps the board in memory file f, which the caller may close after.
func Open(f *os.File) (*Board, error) {
	fd, err := rawfd.Of(f)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if st.Size != size {
		return nil, fmt.Errorf("scoreboard: %d bytes, want %d", st.Size, size)
	}
	return mapFD(fd)
}

func mapFD(fd int) (*Board, error) {
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return &Board{mem: mem}, nil
}

// Close unmaps the board.
func (b *Board) Close() error {
	if b == nil || b.mem == nil {
		return nil
	}
	err := unix.Munmap(b.mem)
	b.mem = nil
	return err
}

func (b *Board) header() *header { return (*header)(unsafe.Pointer(&b.mem[0])) }

func (b *Board) slot(i int) *slot {
	if i < 0 || i >= Slots {
		panic(fmt.Sprintf("scoreboard: slot %d out of range", i))
	}
	return (*slot)(unsafe.Pointer(&b.mem[(i+1)*lineSize]))
}

// Claim zeroes slot i for a new worker (the master, before starting it).
func (b *Board) Claim(i int) {
	s := b.slot(i)
	s.active.Store(0)
	s.open.Store(0)
	s.accepted.Store(0)
	s.window.Store(0)
	s.windowBase.Store(0)
	s.holdUntil.Store(0)
	h := b.header()
	for {
		u := h.used.Load()
		if int64(i) < u || h.used.CompareAndSwap(u, int64(i)+1) {
			return
		}
	}
}

// Clear zeroes slot i once its worker has exited.
func (b *Board) Clear(i int) {
	s := b.slot(i)
	s.active.Store(0)
	s.open.Store(0)
}

// SetActive says whether the worker of slot i takes part: it counts in
// the others' share, and is held to its own.
func (b *Board) SetActive(i int, on bool) {
	var v int64
	if on {
		v = 1
	}
	b.slot(i).active.Store(v)
}

// Open is the open connections of slot i's worker.
func (b *Board) Open(i int) int64 { return b.slot(i).open.Load() }

// Tally is what a worker reads off the board before an accept.
type Tally struct {
	Mine      int64 // the worker's open connections
	Least     int64 // the fewest open connections of another worker taking part; -1: none
	LeastSlot int   // that worker's slot
	Active    bool  // the worker itself takes part
}

// Read tallies the board for slot i, leaving out the slots skip says to
// (nil: none).
func (b *Board) Read(i int, skip func(int) bool) Tally {
	t := Tally{Least: -1, LeastSlot: -1}
	used := int(min(b.header().used.Load(), Slots))
	for j := 0; j < used; j++ {
		s := b.slot(j)
		if j == i {
			t.Mine, t.Active = s.open.Load(), s.active.Load() != 0
			continue
		}
		if s.active.Load() == 0 || (skip != nil && skip(j)) {
			continue
		}
		if o := s.open.Load(); t.Least < 0 || o < t.Least {
			t.Least, t.LeastSlot = o, j
		}
	}
	return t
}

// Accepted is the accepts of slot i's worker so far.
func (b *Board) Accepted(i int) uint64 { return b.slot(i).accepted.Load() }

// Over reports whether a worker holding mine open connections holds
// clearly more than the least loaded other one, which holds least (-1:
// there is none): by a quarter and by at least 4, so that the handful of
// connections short-lived ones keep open does not count as uneven. The
// least loaded worker is never over: one of them always accepts.
func Over(mine, least int64) bool {
	return least >= 0 && mine >= least+max(4, least/4)
}

// How long a worker over its share stops accepting at most (it takes
// new connections again as soon as it is no longer over); after how many
// holds in a row for the same least loaded worker, in which that one
// accepted nothing though connections were waiting, it is left out of
// the count, and for how long (it is stuck, or starved of CPU: new
// connections must not wait for it).
const (
	HoldFor   = 20 * time.Millisecond
	SkipAfter = 2
	SkipFor   = time.Second
)

// Gate is a worker's side of the board: it keeps the worker's counters
// and decides when the worker holds off accepting. It implements
// httpcore.AcceptGate; its methods are called on the event loop alone.
type Gate struct {
	b     *Board
	s     *slot
	i     int
	baton int
	now   func() time.Time

	held     bool         // the last Hold said to hold
	heldFor  int          // the slot it held for (the least loaded)
	heldAcc  uint64       // that slot's accepts then
	heldAt   int64        // and the time (now().UnixNano())
	idleFor  int          // the slot that accepted nothing in the last holds
	idle     int          // how many holds in a row
	skip     [Slots]int64 // by slot: until when (now().UnixNano()) it is left out
	skipping int64        // the latest of skip
	skipNow  int64        // the time skipped compares with
}

// NewGate returns the gate of slot i of b, with the baton descriptor
// (NewBaton) the workers share, or -1.
func NewGate(b *Board, i, baton int) *Gate {
	return &Gate{b: b, s: b.slot(i), i: i, baton: baton, now: time.Now}
}

// Baton is the shared eventfd, or -1.
func (g *Gate) Baton() int { return g.baton }

// Conns adds delta to the worker's open connections.
func (g *Gate) Conns(delta int) { g.s.open.Add(int64(delta)) }

// Accepted counts one accept.
func (g *Gate) Accepted() { g.s.accepted.Add(1) }

func (g *Gate) skipped(j int) bool { return g.skip[j] > g.skipNow }

// read tallies the board, leaving out the slots being skipped.
func (g *Gate) read() Tally {
	if g.skipping == 0 {
		return g.b.Read(g.i, nil)
	}
	if g.skipNow = g.now().UnixNano(); g.skipNow >= g.skipping {
		g.skipping = 0
		return g.b.Read(g.i, nil)
	}
	return g.b.Read(g.i, g.skipped)
}

// Hold is asked before each accept: it returns how long to stop accepting,
// 0 to accept. A worker holds while it is over its share of the open
// connections (Over), or of the connections accepted in the current
// window (AheadOf): the second is what evens out short connections,
// which leave every worker with a handful open. resumed says the loop
// holds no more since just now and found connections waiting: if the
// worker it held for accepted none meanwhile, SkipAfter times in a row,
// that one is left out for SkipFor.
func (g *Gate) Hold(resumed bool) time.Duration {
	if g.held {
		g.held = false
		if resumed {
			g.settle()
		}
	}
	t := g.read()
	if !t.Active {
		g.s.holdUntil.Store(0)
		return 0
	}
	slot, hold := t.LeastSlot, Over(t.Mine, t.Least)
	if !hold {
		slot, hold = g.ahead()
	}
	if !hold {
		g.s.holdUntil.Store(0)
		return 0
	}
	now := g.now().UnixNano()
	g.held, g.heldFor, g.heldAcc, g.heldAt = true, slot, g.b.Accepted(slot), now
	g.s.holdUntil.Store(now + int64(HoldFor))
	return HoldFor
}

// AcceptWindow is how long the accepts of the workers are compared over
// before they start again from even: long enough to count many short
// connections, short enough that a worker which joins, or was starved of
// CPU for a while, is not then given every connection until it catches
// up. Windows are wall-clock time divided by it, the same in every process.
const AcceptWindow = 100 * time.Millisecond

// AheadOf reports whether a worker that accepted mine connections in the
// window is clearly ahead of the one that accepted the fewest, least
// (-1: there is none): by a quarter and by at least 16.
func AheadOf(mine, least int64) bool {
	return least >= 0 && mine >= least+max(16, least/4)
}

// inWindow is the accepts of slot s in window w: none if its worker has
// not entered w (it enters before each accept).
func (s *slot) inWindow(w int64) int64 {
	if s.window.Load() != w {
		return 0
	}
	base, acc := s.windowBase.Load(), s.accepted.Load()
	if acc < base {
		return 0
	}
	return int64(acc - base)
}

// ahead enters the current window and compares this worker's accepts in
// it with the other active workers': it returns the slot that accepted
// the fewest and whether this one is AheadOf it. The fewest is the same
// for every worker, so one of them, at least, always accepts.
func (g *Gate) ahead() (int, bool) {
	now := g.now().UnixNano()
	w := now / int64(AcceptWindow)
	if g.s.window.Load() != w {
		g.s.windowBase.Store(g.s.accepted.Load())
		g.s.window.Store(w)
	}
	used := int(min(g.b.header().used.Load(), Slots))
	least, slot := int64(-1), -1
	g.skipNow = now
	for j := 0; j < used; j++ {
		s := g.b.slot(j)
		// A worker that holds does not count: the others do not wait
		// for it, or all could hold at once.
		if j == g.i || s.active.Load() == 0 || g.skipped(j) || s.holdUntil.Load() > now {
			continue
		}
		if d := s.inWindow(w); least < 0 || d < least {
			least, slot = d, j
		}
	}
	return slot, AheadOf(g.s.inWindow(w), least)
}

// settle sees whether the worker held for accepted during the hold that
// just ended, and leaves it out after SkipAfter holds in a row it did not.
func (g *Gate) settle() {
	if g.b.Accepted(g.heldFor) != g.heldAcc {
		g.idle = 0
		return
	}
	if g.now().UnixNano()-g.heldAt < int64(HoldFor) {
		return // the hold ended early (a new accept window): too short to tell
	}
	if g.idleFor != g.heldFor {
		g.idleFor, g.idle = g.heldFor, 0
	}
	if g.idle++; g.idle < SkipAfter {
		return
	}
	g.idle = 0
	until := g.now().Add(SkipFor).UnixNano()
	g.skip[g.heldFor] = until
	g.skipping = max(g.skipping, until)
}

// Holding reports whether the worker, which holds, is still over its
// share; once it is not, the loop accepts again before HoldFor is up.
func (g *Gate) Holding() bool {
	t := g.read()
	hold := t.Active && Over(t.Mine, t.Least)
	if !hold && t.Active {
		_, hold = g.ahead()
	}
	if !hold {
		g.s.holdUntil.Store(0)
	}
	return hold
}

// PassingGate is the side of the board of a worker that accepts on a
// socket of its own (SO_REUSEPORT): holding off would leave connections
// waiting in its queue, so while it holds clearly more than its share of
// the open connections (OverToShed) it gives idle keep-alive ones to the
// master, which hands them to the worker with the fewest. That evens out
// a burst of new connections, which the kernel splits by a hash of their
// ports, once the burst is over; deciding at accept time instead would go
// by counts that lag behind what waits in the queues, and would move
// short connections, which every worker gets its share of from the
// kernel, at the cost of a hop each. It implements httpcore.AcceptPasser;
// its methods are called on the event loop alone.
type PassingGate struct {
	g    *Gate
	pass func(fd int) bool
}

// NewPassingGate returns the passing gate of slot i of b; pass takes a
// connection (true) or declines it (false: the worker serves it), and
// must not block.
func NewPassingGate(b *Board, i int, pass func(fd int) bool) *PassingGate {
	return &PassingGate{g: NewGate(b, i, -1), pass: pass}
}

// Conns adds delta to the worker's open connections.
func (p *PassingGate) Conns(delta int) { p.g.Conns(delta) }

// Accepted counts one accept.
func (p *PassingGate) Accepted() { p.g.Accepted() }

// Hold is 0: a worker with a queue of its own does not hold off.
func (p *PassingGate) Hold(bool) time.Duration { return 0 }

// Holding is false: see Hold.
func (p *PassingGate) Holding() bool { return false }

// Baton is -1: no other process takes from this worker's queue.
func (p *PassingGate) Baton() int { return -1 }

// Shed is how many idle connections to give away now: half the lead over
// the least loaded worker while OverToShed, at most MaxShed.
func (p *PassingGate) Shed() int {
	t := p.g.read()
	if !t.Active || !OverToShed(t.Mine, t.Least) {
		return 0
	}
	return int(min((t.Mine-t.Least)/2, MaxShed))
}

// Give passes an idle connection on.
func (p *PassingGate) Give(fd int) bool { return p.pass(fd) }

// MaxShed bounds the connections a worker gives away at once: the next
// time it is asked, the counts show where those went.
const MaxShed = 8

// OverToShed is Over for giving idle connections away: a move costs the
// connection one hop through the master and no wait, so a smaller lead
// counts, by an eighth and by at least 2.
func OverToShed(mine, least int64) bool {
	return least >= 0 && mine >= least+max(2, least/8)
}
