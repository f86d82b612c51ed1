package worker

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/httpcore"
)

var when = time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.FixedZone("", -7*3600))

func TestAccessLogFormats(t *testing.T) {
	a := &accessLog{worker: 3}
	for _, tc := range []struct {
		rec          httpcore.ResponseRecord
		common, json string
	}{
		{
			httpcore.ResponseRecord{Time: when, Remote: "127.0.0.1:5000", RequestLine: []byte("GET /a?b=1 HTTP/1.1"), Status: 200, BodyBytes: 12, Duration: 1500 * time.Microsecond},
			`127.0.0.1 - - [04/Mar/2026:05:06:07 -0700] "GET /a?b=1 HTTP/1.1" 200 12` + "\n",
			`{"time":"2026-03-04T05:06:07.008-07:00","remote":"127.0.0.1:5000","request":"GET /a?b=1 HTTP/1.1","status":200,"bytes":12,"duration":0.0015,"worker":3}` + "\n",
		},
		{ // refused by the engine: no request line, no body
			httpcore.ResponseRecord{Time: when, Remote: "[::1]:80", Status: 400},
			`::1 - - [04/Mar/2026:05:06:07 -0700] "-" 400 -` + "\n",
			`{"time":"2026-03-04T05:06:07.008-07:00","remote":"[::1]:80","request":"","status":400,"bytes":0,"duration":0,"worker":3}` + "\n",
		},
		{ // quotes, backslashes and control or non-ASCII bytes are escaped
			httpcore.ResponseRecord{Time: when, RequestLine: []byte("GET /\"\\\x01\xff HTTP/1.0"), Status: 404, BodyBytes: 1},
			`- - - [04/Mar/2026:05:06:07 -0700] "GET /\x22\x5c\x01\xff HTTP/1.0" 404 1` + "\n",
			`{"time":"2026-03-04T05:06:07.008-07:00","remote":"","request":"GET /\"\\\u0001\u00ff HTTP/1.0","status":404,"bytes":1,"duration":0,"worker":3}` + "\n",
		},
	} {
		if got := string(a.appendCommon(nil, &tc.rec)); got != tc.common {
			t.Errorf("common:\n got %s want %s", got, tc.common)
		}
		if got := string(a.appendJSON(nil, &tc.rec)); got != tc.json {
			t.Errorf("json:\n got %s want %s", got, tc.json)
		}
	}
}

type writes [][]byte

func (w *writes) Write(b []byte) (int, error) {
	*w = append(*w, bytes.Clone(b))
	return len(b), nil
}

// TestAccessLogPipeChunks checks that writes to a pipe carry whole lines
// of at most PIPE_BUF bytes, so workers sharing it never split a line.
func TestAccessLogPipeChunks(t *testing.T) {
	var in []byte
	for i := range 500 {
		in = append(in, strings.Repeat("x", i%97)+"\n"...)
	}
	long := strings.Repeat("y", 2*pipeChunk+5) + "\n" // longer than a chunk: in pieces
	in = append(in, long+"z\n"...)
	var w writes
	if err := writeLines(&w, in); err != nil {
		t.Fatal(err)
	}
	if out := bytes.Join(w, nil); !bytes.Equal(out, in) {
		t.Fatalf("wrote %d of %d bytes", len(out), len(in))
	}
	for i, b := range w {
		inLong := bytes.Contains(b, []byte("y"))
		switch {
		case len(b) > pipeChunk:
			t.Errorf("write %d: %d bytes", i, len(b))
		case !inLong && b[len(b)-1] != '\n':
			t.Errorf("write %d ends inside a line", i)
		case !inLong && i < len(w)-1 && len(b)+len(w[i+1]) <= pipeChunk && !bytes.Contains(w[i+1], []byte("y")):
			t.Errorf("writes %d and %d would fit in one", i, i+1)
		}
	}
}

func TestAccessLogDropsWhenFull(t *testing.T) {
	a := &accessLog{kick: make(chan struct{}, 1)}
	rec := httpcore.ResponseRecord{Time: when, RequestLine: []byte("GET / HTTP/1.1"), Status: 200}
	line := len(a.appendCommon(nil, &rec))
	fit := maxPending / line
	for range fit + 10 {
		a.Record(&rec)
	}
	if a.Dropped() != 10 || len(a.pending) != fit*line {
		t.Errorf("dropped %d, queued %d bytes; want 10 and %d", a.Dropped(), len(a.pending), fit*line)
	}
}

func TestAccessLogReopenAndClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.log")
	a, err := newAccessLog(path, AccessLogCommon, 1, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	rec := httpcore.ResponseRecord{Time: when, Status: 200}
	a.Record(&rec)
	deadline := time.Now().Add(5 * time.Second)
	for fi, _ := os.Stat(path); fi == nil || fi.Size() == 0; fi, _ = os.Stat(path) {
		if time.Now().After(deadline) {
			t.Fatal("line never written")
		}
		time.Sleep(time.Millisecond)
	}
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	a.Reopen()
	for _, err := os.Stat(path); err != nil; _, err = os.Stat(path) {
		if time.Now().After(deadline) {
			t.Fatal("never reopened")
		}
		time.Sleep(time.Millisecond)
	}
	a.Record(&rec)
	a.Record(&rec)
	a.Close()
	for name, want := range map[string]int{path + ".1": 1, path: 2} {
		b, _ := os.ReadFile(name)
		if n := bytes.Count(b, []byte("\n")); n != want {
			t.Errorf("%s: %d lines, want %d", name, n, want)
		}
	}
	if err := CheckAccessLog(path, "xml"); err == nil {
		t.Error("format xml accepted")
	}
	if err := CheckAccessLog(filepath.Join(path, "nodir"), AccessLogCommon); err == nil {
		t.Error("a path below a file accepted")
	}
}
