package httpcore

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// chunkedSeeds are chunked bodies, valid and not, for the differential test.
var chunkedSeeds = []string{
	"5\r\nhello\r\n0\r\n\r\n",
	"5;a=b\r\nhello\r\n6\r\n world\r\n0\r\nX-Check: yes\r\nY: 2\r\n\r\n",
	"0\r\n\r\n",
	"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n",
	"1;name=\"quoted \\\" value\"\r\nx\r\n0\r\n\r\n",
	"5\r\nhelloXX0\r\n\r\n",
	"g\r\nhello\r\n0\r\n\r\n",
	"5 \r\nhello\r\n0\r\n\r\n",
	"-5\r\nhello\r\n0\r\n\r\n",
	"5\nhello\r\n0\r\n\r\n",
	"0\r\nX: 1\r\n 2\r\n\r\n",
	"0\r\nX 1\r\n\r\n",
	"0\r\nX: a\x00b\r\n\r\n",
	"100\r\n" + string(bigBody(256)) + "\r\n0\r\n\r\n",
	"201\r\n" + string(bigBody(513)) + "\r\n0\r\n\r\n",
	"1;" + string(bytes.Repeat([]byte("e"), 5000)) + "\r\nx\r\n0\r\n\r\n",
	"0\r\nT: " + string(bytes.Repeat([]byte("v"), 600)) + "\r\n\r\n",
}

// TestChunkedStreamedMatchesBuffered feeds every seed to a streamed body
// in pieces of several sizes and checks it agrees with the buffered path
// on the whole body: same data, trailers and verdict.
func TestChunkedStreamedMatchesBuffered(t *testing.T) {
	for i, body := range chunkedSeeds {
		for _, piece := range []int{1, 2, 3, 7, 64, len(body)} {
			if msg := compareStreamedChunked([]byte(body), fixedSplits(piece)); msg != "" {
				t.Errorf("seed %d, pieces of %d: %s", i, piece, msg)
			}
		}
	}
}

func FuzzChunkDecoder(f *testing.F) {
	for _, s := range chunkedSeeds {
		f.Add([]byte(s), uint64(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		if msg := compareStreamedChunked(body, func() int { return 1 + rng.IntN(16) }); msg != "" {
			t.Fatal(msg)
		}
	})
}

func fixedSplits(n int) func() int { return func() int { return n } }

// compareStreamedChunked decodes body buffered whole and streamed, the input arriving in
// pieces of next() bytes, and describes any difference.
func compareStreamedChunked(body []byte, next func() int) string {
	lim := testLimits
	lim.maxHeader, lim.maxBody, lim.maxChunked = 512, 512, 2*512+512
	wantData, wantTrailer, wantErr := scanChunkedWhole(body, &lim)
	gotData, gotTrailer, gotErr := decodeStreamed(body, &lim, next)
	switch {
	case (wantErr == nil) != (gotErr == nil):
		return fmt.Sprintf("whole: %v, streamed: %v", wantErr, gotErr)
	case wantErr != nil:
		return ""
	case !bytes.Equal(gotData, wantData):
		return fmt.Sprintf("data %q, want %q", gotData, wantData)
	case fmt.Sprint(gotTrailer) != fmt.Sprint(wantTrailer):
		return fmt.Sprintf("trailer %v, want %v", gotTrailer, wantTrailer)
	}
	return ""
}

// scanChunkedWhole decodes body as the buffered path does, in place in a
// copy, and returns its data and trailer fields.
func scanChunkedWhole(body []byte, lim *limits) ([]byte, []field, error) {
	b := bytes.Clone(body)
	var s chunkScan
	end, err := scanChunked(b, 0, &s, lim)
	if err == errIncomplete && len(body) > 0 {
		return nil, nil, errIncomplete
	}
	if err != nil {
		return nil, nil, err
	}
	r := newRequest()
	if e, err := r.parseFields(b, s.trailer(), lim, true); err != nil || e != end {
		return nil, nil, fmt.Errorf("trailers end at %d (%v), body at %d", e, err, end)
	}
	var fields []field
	for _, f := range r.trailers {
		fields = append(fields, field{f.name, f.value})
	}
	return b[:s.data], fields, nil
}

// decodeStreamed runs the decoder as the loop does: unused input is kept
// and offered again with the next piece; the pipe is drained as it fills.
func decodeStreamed(body []byte, lim *limits, next func() int) ([]byte, []field, error) {
	b := &bodyIn{left: -1, pipe: newBodyPipe(&loop{}, false)}
	var in, data []byte
	for off := 0; ; {
		k := min(next(), len(body)-off)
		in = append(in, body[off:off+k]...)
		off += k
		for {
			n, done, err := b.feed(in, lim)
			in = in[n:]
			data = append(data, b.pipe.buf[b.pipe.off:]...)
			b.pipe.buf, b.pipe.off, b.paused = b.pipe.buf[:0], 0, false
			switch {
			case err != nil:
				return nil, nil, err
			case done:
				return data, b.trailer, nil
			case n == 0 || len(in) == 0:
			default:
				continue
			}
			break
		}
		if off == len(body) {
			return nil, nil, errIncomplete
		}
	}
}
