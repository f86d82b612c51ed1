package httpcore

// bufPool is a loop's free list of byte buffers of one size. It is used by
// one goroutine only, so it needs no locking, and a buffer goes back to it
// only once nothing refers to its bytes (output: once written out).
type bufPool struct {
	size int
	free [][]byte
}

// get returns an empty buffer with room for at least n bytes.
func (p *bufPool) get(n int) []byte {
	if n > p.size {
		return make([]byte, 0, n)
	}
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free[k-1] = nil
		p.free = p.free[:k-1]
		return b
	}
	return make([]byte, 0, p.size)
}

// put returns b to the pool if it is of the pool's size and the pool has room.
func (p *bufPool) put(b []byte) {
	if cap(b) != p.size || len(p.free) >= poolMaxFree {
		return
	}
	p.free = append(p.free, b[:0])
}
