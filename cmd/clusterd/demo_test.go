package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/testserve"
)

// startDemo serves the demo app from an event loop in this process and
// returns its address.
func startDemo(t *testing.T) (string, *httpcore.Server) {
	t.Helper()
	srv := httpcore.NewServer(httpcore.Config{}, demoApp(nil)) // outside a worker: /worker reports zeros
	addr := testserve.Loop(t, srv)
	waitFor(t, 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			_ = c.Close()
		}
		return err == nil
	})
	return addr, srv
}

// jsonChars is what encoding/json writes between the quotes for s with
// SetEscapeHTML(false).
func jsonChars(t *testing.T, s []byte) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(string(s)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()[1 : b.Len()-2]
}

// TestAppendJSONCharsMatchesEncodingJSON: the streaming escaper writes what
// encoding/json writes, whole or in pieces of any size.
func TestAppendJSONCharsMatchesEncodingJSON(t *testing.T) {
	inputs := [][]byte{
		nil, []byte("a"), []byte("<>&'"), []byte("\"\\/\n\r\t\b\f\x00\x01\x1f\x7f"),
		[]byte("é€😀\u2028\u2029\ufffd"), []byte("\xff\xfe\xe2\x82\xe2\x82\xacA\xf0\x9f\x98"),
		[]byte("\x80\x80\x80\x80\x80"), bytes.Repeat([]byte("<"), 3*echoPiece+1),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 50 {
		b := make([]byte, rng.IntN(3000))
		for i := range b {
			b[i] = byte(rng.IntN(256))
			if rng.IntN(4) == 0 {
				b[i] = "<\"\\\n\xe2\x80\xa8"[rng.IntN(7)]
			}
		}
		inputs = append(inputs, b)
	}
	for i, in := range inputs {
		want := jsonChars(t, in)
		for _, limit := range []int{1, 2, 7, 100, echoPiece, 1 << 30} {
			var got []byte
			for rest := in; ; {
				piece, k := appendJSONChars(nil, rest, limit)
				got = append(got, piece...)
				if rest = rest[k:]; len(rest) == 0 {
					break
				}
				if k == 0 {
					t.Fatalf("input %d, limit %d: no progress", i, limit)
				}
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("input %d (%q), limit %d:\n got %q\nwant %q", i, in, limit, got, want)
			}
		}
	}
}

// TestEchoBodies echoes bodies of every size around echo's buffers, and
// checks each reply is the request, unescaped '<' included, decodes as
// JSON and costs about the body's size.
func TestEchoBodies(t *testing.T) {
	addr, _ := startDemo(t)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, size := range []int{0, 1, echoInline - 1, echoInline, echoInline + 1, echoPiece - 1,
		echoPiece, echoPiece + 1, 2 * echoPiece, 10 * echoPiece, 1 << 20} {
		for _, fill := range []string{"<", "a\"é\u2028\x01"} {
			body := []byte(strings.Repeat(fill, size/len(fill)+1)[:size])
			resp, err := client.Post("http://"+addr+"/echo?q=<x>", "text/plain", bytes.NewReader(body))
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			raw, err := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("size %d: %d %v", size, resp.StatusCode, err)
			}
			var got struct {
				Method, URL, Body string
				Headers           map[string]string
			}
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatalf("size %d: %v in %.200q", size, err, raw)
			}
			want := strings.ToValidUTF8(string(body), "\ufffd")
			if got.Method != "POST" || got.URL != "/echo?q=<x>" || got.Body != want ||
				got.Headers["Content-Type"] != "text/plain" {
				t.Fatalf("size %d: got %s %s %.100q %v", size, got.Method, got.URL, got.Body, got.Headers)
			}
			if !strings.HasPrefix(string(raw), `{"method":"POST","url":"/echo?q=<x>","headers":{`) {
				t.Fatalf("size %d: reply starts %.80q", size, raw)
			}
			if fill == "<" && len(raw) > size+1024 {
				t.Fatalf("size %d: %d-byte reply: '<' is escaped", size, len(raw))
			}
		}
	}
}

// TestEchoSlowReadersMemory: clients that send a large body and do not
// read the reply hold about the body each, not the escaped reply, and the
// memory is free again once they leave.
func TestEchoSlowReadersMemory(t *testing.T) {
	const readers, size = 40, 1 << 20
	addr, srv := startDemo(t)
	before := heapAlloc()
	body := bytes.Repeat([]byte("<"), size)
	conns := make([]net.Conn, 0, readers)
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for range readers {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)
		if _, err := c.Write(body); err != nil {
			t.Fatal(err)
		}
		// The status line proves the handler ran; then the client stops reading.
		if line, err := bufio.NewReaderSize(c, 16).ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 200") {
			t.Fatalf("reply: %q %v", line, err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let the replies fill what they can
	held := heapAlloc() - before
	t.Logf("%d slow readers of a %d-byte echo hold %d KiB of heap (%d KiB each)", readers, size, held>>10, held/readers>>10)
	if limit := readers * 2 * size; held > limit {
		t.Errorf("%d slow readers hold %d MiB, want under %d MiB (2x the bodies)", readers, held>>20, limit>>20)
	}
	for _, c := range conns {
		_ = c.Close()
	}
	conns = nil
	waitFor(t, 10*time.Second, func() bool { return srv.Stats().Connections == 0 })
	waitFor(t, 10*time.Second, func() bool { return heapAlloc()-before < 8<<20 })
}

// TestEchoGivesMemoryBack: after a burst of large echoes the worker gives
// the memory back to the OS by itself, within seconds.
func TestEchoGivesMemoryBack(t *testing.T) {
	const clients, size = 40, 1 << 20
	addr, _ := startDemo(t)
	heapAlloc()
	base := heapRetained()
	body := bytes.Repeat([]byte("x"), size)
	client := &http.Client{Timeout: 10 * time.Second}
	errs := make(chan error, clients)
	for range clients {
		go func() {
			resp, err := client.Post("http://"+addr+"/echo", "text/plain", bytes.NewReader(body))
			if err == nil {
				var n int64
				n, err = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if err == nil && n < size {
					err = fmt.Errorf("reply of %d bytes", n)
				}
			}
			errs <- err
		}()
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	client.CloseIdleConnections()
	peak := heapRetained()
	t.Logf("heap from the OS: %d MiB before, %d MiB after the burst", base>>20, peak>>20)
	// No collection is forced here: the server must give the memory back itself.
	deadline := time.Now().Add(5 * releaseAfter)
	for heapRetained()-base > 16<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("heap still holds %d MiB from the OS %v after the burst (%d MiB before it, %d MiB at the end of it)",
				heapRetained()>>20, 5*releaseAfter, base>>20, peak>>20)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// heapRetained is the heap memory the process holds from the OS.
func heapRetained() int {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapSys - ms.HeapReleased)
}

func heapAlloc() int {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int(ms.HeapAlloc)
}

// TestDelayRange: /delay takes 0 to 60000 ms; anything else, overflowing
// numbers included, is 400 at once.
func TestDelayRange(t *testing.T) {
	addr, _ := startDemo(t)
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	for _, tc := range []struct {
		ms   string
		code int
	}{
		{"0", 200}, {"1", 200}, {"000000000000000000001", 200}, {"60001", 400}, {"-1", 400}, {"", 400},
		{"+5", 400}, {" 5", 400}, {"5ms", 400}, {"0x10", 400}, {"1e3", 400}, {"600000", 400},
		{"9223372036854775807", 400}, {"9223372036854775808", 400}, {"18446744073709551616", 400},
		{"-9223372036854775808", 400}, {"060001", 400},
	} {
		start := time.Now()
		resp, err := client.Get("http://" + addr + "/delay?ms=" + url.QueryEscape(tc.ms))
		if err != nil {
			t.Fatalf("ms=%q: %v", tc.ms, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("ms=%q: %d, want %d", tc.ms, resp.StatusCode, tc.code)
		}
		if took := time.Since(start); tc.code == 400 && took > time.Second {
			t.Errorf("ms=%q: 400 after %v", tc.ms, took)
		}
	}
	// The top of the range would wait a minute over HTTP.
	for s, want := range map[string]int{"60000": 60000, "59999": 59999, "00042": 42} {
		if ms, ok := parseDelay(s); !ok || ms != want {
			t.Errorf("parseDelay(%q) = %d, %v", s, ms, ok)
		}
	}
}
