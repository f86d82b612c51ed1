package scoreboard

import (
	"testing"
	"time"
)

func TestOver(t *testing.T) {
	for _, c := range []struct {
		mine, least int64
		want        bool
	}{
		{0, -1, false}, // alone
		{100, -1, false},
		{3, 0, false}, // a handful is not uneven
		{4, 0, true},
		{16, 12, true},
		{15, 12, false},
		{20, 16, true},
		{19, 16, false},
		{124, 100, false}, // within a quarter
		{125, 100, true},
		{0, 0, false},
		{5, 9, false}, // the least loaded is never over
	} {
		if got := Over(c.mine, c.least); got != c.want {
			t.Errorf("Over(%d, %d) = %v, want %v", c.mine, c.least, got, c.want)
		}
	}
}

// board returns a board with n active slots holding open[i] connections.
func board(t *testing.T, open ...int64) *Board {
	t.Helper()
	f, b, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(); _ = b.Close() })
	for i, o := range open {
		b.Claim(i)
		b.SetActive(i, true)
		b.slot(i).open.Store(o)
	}
	return b
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestReadLeavesOutInactiveAndSkipped(t *testing.T) {
	b := board(t, 10, 2, 5, 7)
	b.SetActive(1, false)
	got := b.Read(0, nil)
	if got.Mine != 10 || got.Least != 5 || got.LeastSlot != 2 || !got.Active {
		t.Fatalf("Read = %+v, want mine 10, least 5 at slot 2", got)
	}
	got = b.Read(0, func(j int) bool { return j == 2 })
	if got.Least != 7 || got.LeastSlot != 3 {
		t.Fatalf("Read skipping 2 = %+v, want least 7 at slot 3", got)
	}
	b.Clear(3)
	b.Clear(2)
	if got := b.Read(0, nil); got.Least != -1 {
		t.Fatalf("Read with no other active = %+v, want least -1", got)
	}
}

func TestOpenWithBadFileFails(t *testing.T) {
	baton, err := NewBaton()
	if err != nil {
		t.Fatal(err)
	}
	defer baton.Close()
	if _, err := Open(baton); err == nil {
		t.Fatal("Open of an eventfd: no error")
	}
}

func TestBoardIsShared(t *testing.T) {
	f, b, err := Create()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	defer b.Close()
	b2, err := Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	b.Claim(3)
	b.SetActive(3, true)
	g := NewGate(b2, 3, -1)
	g.Conns(1)
	g.Conns(1)
	g.Accepted()
	if b.Open(3) != 2 || b.Accepted(3) != 1 {
		t.Fatalf("through the other mapping: open %d accepted %d, want 2 and 1", b.Open(3), b.Accepted(3))
	}
	if got := b.Read(0, nil); got.Least != 2 || got.LeastSlot != 3 {
		t.Fatalf("Read = %+v", got)
	}
}

func TestGateHoldsWhileOver(t *testing.T) {
	b := board(t, 20, 10, 30)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	g := NewGate(b, 0, -1)
	g.now = clk.now
	if d := g.Hold(false); d != HoldFor {
		t.Fatalf("20 open against 10: Hold = %v, want %v", d, HoldFor)
	}
	if !g.Holding() {
		t.Fatal("Holding = false while still over")
	}
	b.slot(1).open.Store(17) // the other one took some
	if g.Holding() {
		t.Fatal("Holding = true once no longer over")
	}
	b.slot(1).accepted.Add(7)
	if d := g.Hold(true); d != 0 {
		t.Fatalf("no longer over: Hold = %v, want 0", d)
	}
	if g2 := NewGate(b, 1, -1); g2.Hold(false) != 0 {
		t.Fatal("the least loaded worker held")
	}
	b.SetActive(0, false)
	if d := g.Hold(false); d != 0 {
		t.Fatalf("not taking part: Hold = %v, want 0", d)
	}
}

// A worker that held for one that then accepted nothing, SkipAfter times
// in a row, leaves it out of the count for SkipFor; accepts by another
// worker say nothing of that one.
func TestGateSkipsAStuckWorker(t *testing.T) {
	b := board(t, 40, 0, 0)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	g := NewGate(b, 0, -1)
	g.now = clk.now
	if d := g.Hold(false); d != HoldFor || g.heldFor != 1 {
		t.Fatalf("Hold = %v for slot %d, want a hold for slot 1 (the first of the least loaded)", d, g.heldFor)
	}
	for i := 1; i < SkipAfter; i++ {
		b.slot(2).accepted.Add(1)
		clk.t = clk.t.Add(HoldFor)
		// resumed with connections waiting; slot 1 accepted nothing
		if d := g.Hold(true); d != HoldFor || g.heldFor != 1 {
			t.Fatalf("resume %d: Hold = %v for slot %d, want another hold for slot 1", i, d, g.heldFor)
		}
	}
	clk.t = clk.t.Add(HoldFor)
	if d := g.Hold(true); d != HoldFor || g.heldFor != 2 {
		t.Fatalf("after %d idle holds: Hold = %v for slot %d, want a hold for slot 2", SkipAfter, d, g.heldFor)
	}
	b.slot(2).accepted.Add(1) // slot 2 is alive: it accepts, and takes its share
	b.slot(2).open.Store(38)
	clk.t = clk.t.Add(HoldFor)
	if d := g.Hold(true); d != 0 {
		t.Fatalf("slot 1 left out, slot 2 at 38: Hold = %v, want 0", d)
	}
	clk.t = clk.t.Add(SkipFor)
	if d := g.Hold(false); d != HoldFor || g.heldFor != 1 {
		t.Fatalf("after SkipFor: Hold = %v for slot %d, want a hold for slot 1 again", d, g.heldFor)
	}
}

// Holds that end with no connection waiting say nothing of the others.
func TestGateIdleResumeSkipsNobody(t *testing.T) {
	b := board(t, 40, 0)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	g := NewGate(b, 0, -1)
	g.now = clk.now
	for i := 0; i < 5*SkipAfter; i++ {
		if d := g.Hold(false); d != HoldFor || g.heldFor != 1 {
			t.Fatalf("hold %d: %v for slot %d", i, d, g.heldFor)
		}
		clk.t = clk.t.Add(HoldFor)
	}
}

func TestAheadOf(t *testing.T) {
	for _, c := range []struct {
		mine, least int64
		want        bool
	}{
		{100, -1, false}, // alone
		{15, 0, false},   // a handful is not uneven
		{16, 0, true},
		{115, 100, false}, // within a quarter
		{125, 100, true},
		{0, 0, false},
		{3, 40, false}, // the fewest is never ahead
	} {
		if got := AheadOf(c.mine, c.least); got != c.want {
			t.Errorf("AheadOf(%d, %d) = %v, want %v", c.mine, c.least, got, c.want)
		}
	}
}

// A worker that accepted clearly more than another in the current window
// holds, though they hold as many open connections; in the next window it
// starts from even. A worker that holds does not count.
func TestGateHoldsWhileAheadInTheWindow(t *testing.T) {
	b := board(t, 2, 2, 2)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	gs := []*Gate{NewGate(b, 0, -1), NewGate(b, 1, -1), NewGate(b, 2, -1)}
	for _, g := range gs {
		g.now = clk.now
		if d := g.Hold(false); d != 0 {
			t.Fatalf("slot %d at the start: Hold = %v", g.i, d)
		}
	}
	for range 16 {
		gs[0].Accepted()
	}
	for _, g := range gs[1:] {
		g.Accepted()
		g.Accepted()
		g.Accepted()
	}
	if d := gs[0].Hold(false); d != 0 {
		t.Fatalf("16 accepts against 3: Hold = %v, want 0 (within 16)", d)
	}
	gs[0].Accepted()
	gs[0].Accepted()
	gs[0].Accepted()
	if d := gs[0].Hold(false); d != HoldFor || gs[0].heldFor != 1 {
		t.Fatalf("19 accepts against 3: Hold = %v for slot %d, want a hold for slot 1", d, gs[0].heldFor)
	}
	for range 20 {
		gs[1].Accepted()
	}
	// Slot 1 is ahead of slot 2 by 20; slot 0 holds and does not count.
	if d := gs[1].Hold(false); d != HoldFor || gs[1].heldFor != 2 {
		t.Fatalf("slot 1, 23 accepts against 3: Hold = %v for slot %d, want a hold for slot 2", d, gs[1].heldFor)
	}
	if d := gs[2].Hold(false); d != 0 {
		t.Fatalf("slot 2, the fewest, with both others holding: Hold = %v", d)
	}
	gs[2].Accepted()
	gs[2].Accepted()
	if !gs[1].Holding() {
		t.Fatal("slot 1, 23 against 5: not holding")
	}
	for range 10 {
		gs[2].Accepted()
	}
	if gs[0].Holding() || gs[1].Holding() {
		t.Fatal("slot 2 caught up: still holding")
	}
	for range 100 {
		gs[0].Accepted()
	}
	clk.t = clk.t.Add(AcceptWindow)
	if d := gs[0].Hold(false); d != 0 {
		t.Fatalf("a new window: Hold = %v, want 0", d)
	}
}

// Workers on one board, offered new connections always in the same order
// (the first asked is the one the kernel favours): each connection is
// taken by one of them, never left to a moment when all hold, and over
// many windows they take shares within a quarter of each other. A worker
// that holds sleeps until its hold is up (an event loop with nothing else
// to do is not woken to ask Holding).
func TestGatesShareNewConnections(t *testing.T) {
	const workers = 4
	b := board(t, make([]int64, workers)...)
	clk := &fakeClock{t: time.Unix(1000, 0)}
	gs := make([]*Gate, workers)
	until := make([]time.Time, workers) // when each one's hold ends
	holding := make([]bool, workers)
	for i := range gs {
		gs[i] = NewGate(b, i, -1)
		gs[i].now = clk.now
	}
	var taken [workers]int
	const conns = 100_000
	for n := 0; n < conns; n++ {
		clk.t = clk.t.Add(50 * time.Microsecond)
		for i := range gs {
			if holding[i] && !clk.t.Before(until[i]) {
				holding[i] = false
			}
		}
		took := false
		for i, g := range gs {
			if holding[i] {
				continue
			}
			if d := g.Hold(false); d > 0 {
				holding[i], until[i] = true, clk.t.Add(d)
				continue
			}
			g.Accepted()
			taken[i]++
			took = true
			break
		}
		if !took {
			t.Fatalf("connection %d: every worker holds (%v)", n, holding)
		}
	}
	least, most := taken[0], taken[0]
	for _, n := range taken {
		least, most = min(least, n), max(most, n)
	}
	if float64(most) > 1.25*float64(least) {
		t.Fatalf("accepts per worker %v: busiest/idlest %.2f, want at most 1.25", taken, float64(most)/float64(least))
	}
}
