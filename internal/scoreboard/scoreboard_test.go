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
