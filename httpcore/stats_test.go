package httpcore

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestObserveBuckets(t *testing.T) {
	ms := int64(time.Millisecond)
	for _, tc := range []struct {
		took   int64
		bucket int
	}{
		{0, 0},
		{ms, 0}, // bounds are inclusive (Prometheus "le")
		{ms + 1, 1},
		{int64(2500 * time.Microsecond), 1},
		{int64(2500*time.Microsecond) + 1, 2},
		{int64(10 * time.Second), len(DurationBuckets) - 1},
		{int64(10*time.Second) + 1, len(DurationBuckets)}, // +Inf
		{int64(time.Hour), len(DurationBuckets)},
	} {
		var c Counters
		c.observe(200, tc.took)
		if c.Duration[tc.bucket] != 1 {
			t.Errorf("took %v: buckets %v, want bucket %d", time.Duration(tc.took), c.Duration, tc.bucket)
		}
		if c.DurationSum != time.Duration(tc.took) {
			t.Errorf("took %v: sum %v", time.Duration(tc.took), c.DurationSum)
		}
	}
}

func TestObserveStatusClasses(t *testing.T) {
	var c Counters
	for _, s := range []int{100, 199, 200, 204, 301, 404, 499, 500, 599, 600, 99} {
		c.observe(s, 0)
	}
	if want := [6]uint64{2, 2, 2, 1, 2, 2}; c.Responses != want {
		t.Errorf("responses by class %v, want %v", c.Responses, want)
	}
}

func TestStatsCountRequestsBytesAndDurations(t *testing.T) {
	h := newHarness(t, Config{}, nil)
	h.l.h = h.asyncHandler()
	defer h.close()
	in := "GET /a HTTP/1.1\r\nHost: x\r\n\r\n" + "GET /async HTTP/1.1\r\nHost: x\r\n\r\n"
	h.feed([]byte(in))
	st := &h.l.st
	if st.Responses[2] != 1 || st.Accepted != 1 {
		t.Fatalf("after one answered request: %+v", *st)
	}
	h.l.publishStats(true)
	if g := h.l.s.Stats().Gauges; g != (Gauges{Open: 1, InFlight: 1}) {
		t.Errorf("gauges with an asynchronous response pending: %+v", g)
	}
	h.l.now += int64(30 * time.Millisecond)
	h.endAsync()
	if st.Responses[2] != 2 {
		t.Fatalf("after the asynchronous response: %+v", *st)
	}
	if st.Duration[0] != 1 || st.Duration[5] != 1 { // 0 and 30ms (≤ 50ms)
		t.Errorf("duration buckets %v", st.Duration)
	}
	if st.DurationSum != 30*time.Millisecond {
		t.Errorf("duration sum %v", st.DurationSum)
	}
	if st.BytesIn != uint64(len(in)) || st.BytesOut != uint64(len(h.out)) {
		t.Errorf("bytes in %d out %d, want %d and %d", st.BytesIn, st.BytesOut, len(in), len(h.out))
	}
	h.l.publishStats(true)
	if g := h.l.s.Stats().Gauges; g != (Gauges{Open: 1, Idle: 1}) {
		t.Errorf("gauges of an idle connection: %+v", g)
	}
}

func TestStatsCountRefusedByKind(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		kind     int
		class    int
	}{
		{"malformed", "GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n", RefusedMalformed, 4},
		{"head", "GET / HTTP/1.1\r\nHost: x\r\nX: " + strings.Repeat("a", DefaultMaxHeaderBytes) + "\r\n\r\n", RefusedHeadTooLarge, 4},
		{"body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n", RefusedBodyTooLarge, 4},
		{"version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", RefusedUnsupported, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{}, HandlerFunc(echo))
			defer h.close()
			h.feed([]byte(tc.in))
			st := h.l.st
			if st.Refused[tc.kind] != 1 || st.Responses[tc.class] != 1 {
				t.Errorf("refused %v responses %v; want one %s, one %dxx", st.Refused, st.Responses, RefusedKinds[tc.kind], tc.class)
			}
		})
	}
}

func TestStatsTimeoutAndPanic(t *testing.T) {
	h := newHarness(t, Config{HeaderTimeout: time.Second}, testHandler())
	h.feed([]byte("GET / HTT"))
	h.advance(2 * time.Second)
	if st := h.l.st; st.Refused[RefusedTimeout] != 1 || st.Responses[4] != 1 {
		t.Errorf("after a head timeout: refused %v responses %v", st.Refused, st.Responses)
	}
	h.close()

	h = newHarness(t, Config{}, testHandler())
	defer h.close()
	h.feed([]byte("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n"))
	if st := h.l.st; st.Responses[5] != 1 || st.Refused != [numRefused]uint64{} {
		t.Errorf("after a handler panic: refused %v responses %v", st.Refused, st.Responses)
	}
}

// TestStatsFinalAfterServe checks that the counters a Server reports once
// Serve has returned include every request it answered.
func TestStatsFinalAfterServe(t *testing.T) {
	fd, addr := listenLoopback(t)
	defer closeFD(fd)
	s := NewServer(Config{}, testHandler())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve([]int{fd}) }()
	ts := &testServer{Server: s, addr: addr}
	c := ts.dial(t)
	const n = 37
	for range n {
		c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if r := c.read("GET"); r.StatusCode != 200 {
			t.Fatalf("status %d", r.StatusCode)
		}
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Counters.Responses[2] != n || st.Counters.Accepted != 1 || st.Gauges != (Gauges{}) {
		t.Errorf("final stats: %+v", st)
	}
	if sum := st.Counters.Duration[0]; sum != n {
		t.Errorf("duration buckets %v", st.Counters.Duration)
	}
}

func TestOnResponseRecords(t *testing.T) {
	type rec struct {
		line   string
		status int
		bytes  int64
		took   time.Duration
	}
	var got []rec
	cfg := Config{OnResponse: func(r *ResponseRecord) {
		got = append(got, rec{string(r.RequestLine), r.Status, r.BodyBytes, r.Duration})
	}}
	h := newHarness(t, cfg, nil)
	h.l.h = h.asyncHandler()
	defer h.close()
	h.feed([]byte("GET /a?x=1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /async HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nhi"))
	h.l.now += int64(3 * time.Millisecond)
	h.endAsync()
	h.feed([]byte("GET / HTTP/1.1\r\nHost: x\r\nBad Field: y\r\n\r\n"))
	want := []rec{
		{"GET /a?x=1 HTTP/1.1", 200, int64(len("GET /a?x=1 HTTP/1.1\nh Host: x\nbody 0 \"\"\n")), 0},
		{"POST /async HTTP/1.0", 200, -1, 3 * time.Millisecond},
		{"", 400, 0, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("records %+v", got)
	}
	for i := range want {
		if want[i].bytes == -1 {
			want[i].bytes = got[i].bytes // echo's length, checked for the first
		}
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}
