package httpcore

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

var sweepSeed = flag.Uint64("sweep.seed", 0, "seed of the random splits in the body size sweeps (0: from the clock)")

// sweepRand returns the random source of a sweep, logging its seed so that
// a failure can be replayed with -sweep.seed.
func sweepRand(t *testing.T) *rand.Rand {
	seed := *sweepSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("random splits: -sweep.seed=%d", seed)
	return rand.New(rand.NewPCG(seed, seed^0x5eed))
}

// sweepSizes are the body sizes at every buffer and limit a request body
// meets on its way in and, echoed, on its way out: each of them, one less
// and one more, and a few multiples of the read buffer.
func sweepSizes(maxBody int) []int {
	sizes := []int{0, 1, 2 * readBufferSize, 10 * readBufferSize}
	for _, b := range []int{
		minReadRoom, inPoolSize, minReadSpace, readBufferSize, // input buffers
		pipeSize,                                 // a streamed body's pipe
		outPoolSize, maxScratchBody, streamChunk, // output buffers
		streamLowWater, highWater, streamHighWater, // output water marks
		maxBody, // the body limit
	} {
		sizes = append(sizes, b-1, b, b+1)
	}
	slices.Sort(sizes)
	sizes = slices.Compact(sizes)
	return slices.DeleteFunc(sizes, func(n int) bool { return n > maxBody+1 })
}

// byteByByteMax is the largest body also sent a byte per read.
const byteByByteMax = minReadSpace + 1

// sweepDelivery is how a request stream is cut into reads.
type sweepDelivery struct {
	name string
	cut  func(in []byte) [][]byte
}

func sweepDeliveries(rng *rand.Rand, size int) []sweepDelivery {
	d := []sweepDelivery{
		{"whole", func(in []byte) [][]byte { return [][]byte{in} }},
		{"random", func(in []byte) [][]byte { return cutRandomly(rng, in) }},
	}
	if size <= byteByByteMax {
		d = append(d, sweepDelivery{"bytes", func(in []byte) [][]byte { return cutEvery(in, 1) }})
	}
	return d
}

// cutRandomly cuts in at up to 16 random places, one of them near the end
// of the head.
func cutRandomly(rng *rand.Rand, in []byte) [][]byte {
	cuts := []int{min(len(in), 30+rng.IntN(40))}
	for range rng.IntN(16) {
		cuts = append(cuts, rng.IntN(len(in)+1))
	}
	slices.Sort(cuts)
	var pieces [][]byte
	prev := 0
	for _, c := range append(cuts, len(in)) {
		if c > prev {
			pieces = append(pieces, in[prev:c])
			prev = c
		}
	}
	return pieces
}

func cutEvery(in []byte, n int) [][]byte {
	var pieces [][]byte
	for len(in) > 0 {
		k := min(n, len(in))
		pieces = append(pieces, in[:k])
		in = in[k:]
	}
	return pieces
}

// TestBodySizeSweep sends bodies of every size in sweepSizes, with a
// Content-Length and chunked, whole, byte by byte and in random pieces,
// followed by a pipelined request, to a native and a net/http handler in a
// real loop. A body within MaxBodyBytes must be echoed exactly and the
// next request served, leaving the connection idle and holding no input;
// one over it must get a 413 and the connection must close.
func TestBodySizeSweep(t *testing.T) {
	rng := sweepRand(t)
	const smallLimit = 3000 // a limit low enough to cross a byte at a time
	configs := []struct {
		cfg   Config
		sizes []int
	}{
		{Config{}, sweepSizes(DefaultMaxBodyBytes)},
		{Config{MaxBodyBytes: smallLimit}, []int{smallLimit - 1, smallLimit, smallLimit + 1}},
	}
	handlers := []struct {
		name string
		h    Handler
	}{
		{"native", bodyEcho()},
		{"streaming", streamEcho()},
	}
	for _, cf := range configs {
		limit := int(cf.cfg.withDefaults().MaxBodyBytes)
		for _, hd := range handlers {
			for _, chunked := range []bool{false, true} {
				for _, size := range cf.sizes {
					body := bigBody(size)
					chunk := max(1+rng.IntN(max(size, 1)), 1000)
					in := append(bodyRequest("POST", body, chunked, chunk), nextRequest...)
					for _, d := range sweepDeliveries(rng, size) {
						pieces := d.cut(in)
						name := fmt.Sprintf("limit=%d/%s/chunked=%v/%d/%s", limit, hd.name, chunked, size, d.name)
						t.Run(name, func(t *testing.T) {
							sweepOne(t, cf.cfg, hd.h, pieces, body, size > limit)
						})
					}
				}
			}
		}
	}
}

// sweepOne feeds pieces to a new connection and checks the outcome.
func sweepOne(t *testing.T, cfg Config, h Handler, pieces [][]byte, body []byte, tooLarge bool) {
	hs := newHarness(t, cfg, h)
	defer hs.close()
	for _, p := range pieces {
		hs.feed(p)
	}
	hs.settle()
	if tooLarge {
		checkResponseSeq(t, hs.out, 1, func(_, status int, _ []byte) {
			if status != 413 {
				t.Fatalf("status %d, want 413", status)
			}
		})
		if hs.c.state == connActive {
			t.Fatalf("connection still active after 413")
		}
		hs.shutWrite()
		if !hs.closed() {
			t.Fatalf("connection not closed after 413 and EOF (state %d)", hs.c.state)
		}
		return
	}
	checkEchoes(t, hs.out, body, "next")
	if c := hs.c; !c.idle() || c.in != nil || c.out != nil || c.body != nil {
		t.Fatalf("after the requests: state %d, in %d/%d, out %d, body %v",
			c.state, len(c.in), cap(c.in), len(c.out), c.body != nil)
	}
	hs.shutWrite()
	if !hs.closed() {
		t.Fatalf("connection not closed at EOF")
	}
}

// settle runs the connection until the responses of handlers running on
// other goroutines are written: it is idle, or done with reading.
func (h *harness) settle() {
	h.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Microsecond) {
		h.run()
		if c := h.c; c.idle() || c.state >= connLingering {
			return
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("connection did not settle: state %d, async %v, body %v, in %d, pending %d",
				h.c.state, h.c.async != nil, h.c.body != nil, len(h.c.in), h.c.pendingOut())
		}
	}
}

// TestHeadSizeSweep sends heads of MaxHeaderBytes, one byte less and one
// more, each with a body larger than the read buffer behind it, whole and
// in random pieces: the first two are echoed and the next request served,
// the last gets a 431 and the connection closes.
func TestHeadSizeSweep(t *testing.T) {
	rng := sweepRand(t)
	const bodySize = 2*readBufferSize + 1
	body := bigBody(bodySize)
	for _, size := range []int{DefaultMaxHeaderBytes - 1, DefaultMaxHeaderBytes, DefaultMaxHeaderBytes + 1} {
		for _, chunked := range []bool{false, true} {
			in := padHead(bodyRequest("POST", body, chunked, 40_000), size)
			if got := bytes.Index(in, []byte("\r\n\r\n")) + 4; got != size {
				t.Fatalf("head of %d bytes, want %d", got, size)
			}
			in = append(in, nextRequest...)
			for _, d := range sweepDeliveries(rng, bodySize) {
				pieces := d.cut(in)
				t.Run(fmt.Sprintf("head=%d/chunked=%v/%s", size, chunked, d.name), func(t *testing.T) {
					if size <= DefaultMaxHeaderBytes {
						sweepOne(t, Config{}, bodyEcho(), pieces, body, false)
						return
					}
					h := newHarness(t, Config{}, bodyEcho())
					defer h.close()
					for _, p := range pieces {
						h.feed(p)
					}
					checkResponseSeq(t, h.out, 1, func(_, status int, _ []byte) {
						if status != 431 {
							t.Fatalf("status %d, want 431", status)
						}
					})
					h.shutWrite()
					if !h.closed() {
						t.Fatalf("connection not closed after 431 and EOF (state %d)", h.c.state)
					}
				})
			}
		}
	}
}

// padHead adds a field to the head of req so that the head is size bytes.
func padHead(req []byte, size int) []byte {
	end := bytes.Index(req, []byte("\r\n\r\n")) + 2
	pad := size - (end + 2) - len("X-Pad: \r\n")
	field := "X-Pad: " + strings.Repeat("p", pad) + "\r\n"
	return slices.Concat(req[:end], []byte(field), req[end:])
}
