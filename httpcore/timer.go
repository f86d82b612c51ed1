package httpcore

// timerHeap is a loop's min-heap of connection deadlines, in nanoseconds of
// loop time. Each connection has at most one entry. Deadlines are updated
// lazily: moving a deadline later (the common case: every request pushes the
// idle deadline out) only rewrites the connection's field, and the entry is
// re-keyed when it reaches the top; moving it earlier costs O(log n).
type timerHeap struct {
	items []*conn
}

// timerEntry is a connection's place in the heap.
type timerEntry struct {
	deadline int64 // 0: none
	key      int64 // heap key, <= deadline while deadline != 0
	index    int   // position in the heap, -1 when absent
}

// set makes when (0 for none) the deadline of c.
func (h *timerHeap) set(c *conn, when int64) {
	t := &c.timer
	t.deadline = when
	switch {
	case when == 0:
		// Left in place; dropped when it reaches the top.
	case t.index < 0:
		t.key = when
		t.index = len(h.items)
		h.items = append(h.items, c)
		h.up(t.index)
	case when < t.key:
		t.key = when
		h.up(t.index)
	}
}

// remove takes c out of the heap.
func (h *timerHeap) remove(c *conn) {
	i := c.timer.index
	if i < 0 {
		return
	}
	last := len(h.items) - 1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	c.timer = timerEntry{index: -1}
	if i != last {
		h.down(i)
		h.up(i)
	}
}

// next returns the earliest key, which may precede the real deadline, or
// false when the heap is empty.
func (h *timerHeap) next() (int64, bool) {
	if len(h.items) == 0 {
		return 0, false
	}
	return h.items[0].timer.key, true
}

// popExpired removes and returns a connection whose deadline is at or before
// now, or nil when there is none.
func (h *timerHeap) popExpired(now int64) *conn {
	for len(h.items) > 0 {
		c := h.items[0]
		t := &c.timer
		switch {
		case t.key > now:
			return nil
		case t.deadline == 0:
			h.remove(c)
		case t.deadline > now:
			t.key = t.deadline
			h.down(0)
		default:
			h.remove(c)
			return c
		}
	}
	return nil
}

func (h *timerHeap) less(i, j int) bool { return h.items[i].timer.key < h.items[j].timer.key }

func (h *timerHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].timer.index = i
	h.items[j].timer.index = j
}

func (h *timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h *timerHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			return
		}
		h.swap(i, m)
		i = m
	}
}
