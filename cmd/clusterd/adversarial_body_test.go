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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Documented bounds on what a slow reader of a large response may cost the
// worker serving it (README, "Reliability"): a reader that stops reading a
// /echo of a 1 MiB body holds at most echoSlowReaderBound of worker RSS (the
// body, the copy the reply is streamed from, the bounded output in flight,
// and the garbage collector's headroom over them); a reader of a large file
// under --root at most fileSlowReaderBound (the file goes out with
// sendfile; nothing is buffered). Once the readers leave, the worker's RSS
// is back within givenBackSlack of where it started.
const (
	echoSlowReaderBound = 5 << 20 // bytes
	fileSlowReaderBound = 64 << 10
	givenBackSlack      = 8 << 20
)

// markup is a request body that JSON escaping inflates about five times
// ("<" becomes "\u003c" unless told otherwise).
func markup(n int) []byte {
	const unit = "<<<<<<<<<<<<&>\"\\\n"
	return bytes.Repeat([]byte(unit), n/len(unit)+1)[:n]
}

// slowDialer dials with a 4 KiB receive buffer, so a reader that stops
// reading leaves almost everything in the server.
var slowDialer = net.Dialer{
	Timeout: 2 * time.Second,
	Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
		if err != nil {
			return err
		}
		return serr
	},
}

// TestAdversarialSlowReaders: readers that stop reading large responses
// cost the worker a bounded amount of memory each, and the worker gives it
// back when they leave.
func TestAdversarialSlowReaders(t *testing.T) {
	if raceDetector {
		t.Skip("worker RSS under the race detector is mostly its shadow memory")
	}
	const readers = 16
	body := markup(1 << 20)
	echoReq := append([]byte(fmt.Sprintf("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/html\r\nContent-Length: %d\r\n\r\n", len(body))), body...)
	t.Run("echo", func(t *testing.T) {
		c := startCluster(t, 1, nil, "--workers", "1", "--log-level", "info")
		slowReaders(t, c, echoReq, readers, echoSlowReaderBound)
	})
	t.Run("root", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		c := startCluster(t, 1, nil, "--workers", "1", "--log-level", "info", "--root", dir)
		slowReaders(t, c, []byte("GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n"), readers, fileSlowReaderBound)
	})
}

func slowReaders(t *testing.T, c *cluster, req []byte, n int, bound int64) {
	var pid int
	for _, p := range c.livePids() {
		pid = p
	}
	// One reader that reads everything warms the worker up.
	if out := rawRoundTrip(t, c.addr, req); !strings.HasPrefix(out, "HTTP/1.1 200 ") {
		t.Fatalf("warm-up: %.200q", out)
	}
	base := settledRSS(t, pid)
	var conns []net.Conn
	defer func() {
		for _, nc := range conns {
			_ = nc.Close()
		}
	}()
	for i := 0; i < n; i++ {
		nc, err := slowDialer.Dial("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, nc)
		_ = nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := nc.Write(req); err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
	}
	// Each reader reads the status line, so its response is under way,
	// then nothing more.
	for i, nc := range conns {
		status := make([]byte, len("HTTP/1.1 200 "))
		_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(nc, status); err != nil || string(status) != "HTTP/1.1 200 " {
			t.Fatalf("reader %d: %q %v", i, status, err)
		}
	}
	var peak int64
	for i := 0; i < 10; i++ {
		peak = max(peak, rssKiB(t, pid))
		time.Sleep(100 * time.Millisecond)
	}
	per := (peak - base) * 1024 / int64(n)
	t.Logf("worker RSS %d KiB idle, %d KiB with %d slow readers: %d KiB each (bound %d KiB)",
		base, peak, n, per>>10, bound>>10)
	if per > bound {
		t.Errorf("each slow reader costs %d KiB of worker RSS, want at most %d KiB", per>>10, bound>>10)
	}
	for _, nc := range conns {
		_ = nc.Close()
	}
	conns = nil
	var after int64
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if after = rssKiB(t, pid); (after-base)*1024 <= givenBackSlack {
			break
		}
	}
	t.Logf("worker RSS %d KiB after the readers left", after)
	if (after-base)*1024 > givenBackSlack {
		t.Errorf("worker RSS %d KiB 10s after the slow readers left, started at %d KiB: not given back", after, base)
	}
	if !alive(pid) {
		t.Errorf("worker %d died", pid)
	}
}

// settledRSS waits (at most 5 s) until pid's RSS has not moved for 1.2 s,
// longer than a worker waits to give memory back, and returns it.
func settledRSS(t *testing.T, pid int) int64 {
	prev, still := rssKiB(t, pid), 0
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && still < 4; {
		time.Sleep(300 * time.Millisecond)
		cur := rssKiB(t, pid)
		if still++; cur-prev >= 64 || prev-cur >= 64 {
			still = 0
		}
		prev = cur
	}
	return prev
}

// rawRoundTrip sends req on a new connection and reads one response whole.
func rawRoundTrip(t *testing.T, addr string, req []byte) string {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := nc.Write(req); err != nil {
		return "write: " + err.Error()
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		return "read: " + err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "read body: " + err.Error()
	}
	return fmt.Sprintf("HTTP/1.1 %s\r\n\r\n%s", resp.Status, b)
}

// TestAdversarialLargePosts: request bodies around and far past the read
// buffer, up to and past --max-body-bytes, in one write and in random
// splits, Content-Length and chunked, four at a time, three rounds, while
// keep-alive GETs keep the same worker's loop busy: each gets its own
// answer, whole (no byte of another response), and the worker does not die.
func TestAdversarialLargePosts(t *testing.T) {
	const limit = 1 << 20 // --max-body-bytes default
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	c := startCluster(t, 1, nil, "--workers", "1", "--log-level", "info")
	before := c.livePids()
	type post struct {
		size           int
		split, chunked bool
	}
	var posts []post
	for _, size := range []int{0, 1, 64<<10 - 1, 64 << 10, 64<<10 + 1, 70_000, 128 << 10, 200_000, 480_000, 640 << 10, 1_000_000, limit - 1, limit, limit + 1} {
		for _, split := range []bool{false, true} {
			for _, chunked := range []bool{false, true} {
				posts = append(posts, post{size, split, chunked})
			}
		}
	}
	l := startLoad(c.addr, "/", 16, 30*time.Second)
	next := make(chan int)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := posts[i]
				name := fmt.Sprintf("%d bytes, split %v, chunked %v", p.size, p.split, p.chunked)
				body := markup(p.size)
				got, code := postEcho(t, c.addr, body, p.chunked, p.split, rand.New(rand.NewPCG(seed, uint64(i))))
				switch {
				case p.size > limit && code != 413:
					t.Errorf("%s: status %d, want 413", name, code)
				case p.size <= limit && (code != 200 || !bytes.Equal(got, body)):
					t.Errorf("%s: status %d, echoed %d bytes, want 200 and the body", name, code, len(got))
				}
			}
		}()
	}
	for round := 0; round < 3; round++ { // the interleavings vary
		for i := range posts {
			next <- i
		}
	}
	close(next)
	wg.Wait()
	l.stopAndWait()
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 {
		t.Errorf("GET load beside the large bodies: %v", l)
	}
	assertSameWorkers(t, c, before)
}

// TestAdversarialLargeBodyUnderRoot: a GET carrying a large body under
// --root gets an answer and kills no worker.
func TestAdversarialLargeBodyUnderRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>hi</p>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, 2, nil, "--workers", "2", "--log-level", "info", "--root", dir)
	before := c.livePids()
	for _, size := range []int{70_000, 300_000, 1 << 20} {
		req := append([]byte(fmt.Sprintf("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size)), make([]byte, size)...)
		if out := rawRoundTrip(t, c.addr, req); !strings.HasPrefix(out, "HTTP/1.1 2") && !strings.HasPrefix(out, "HTTP/1.1 4") {
			t.Errorf("GET / with a %d-byte body: %.120q", size, out)
		}
	}
	assertSameWorkers(t, c, before)
}

// postEcho posts body to /echo and returns the body echoed and the status.
// With split, the request goes out in random pieces, a pause between each.
func postEcho(t *testing.T, addr string, body []byte, chunked, split bool, rng *rand.Rand) ([]byte, int) {
	t.Helper()
	var req bytes.Buffer
	if chunked {
		req.WriteString("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		for rest := body; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(100_000))
			fmt.Fprintf(&req, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		req.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&req, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
	}
	var pieces [][]byte
	for b := req.Bytes(); len(b) > 0; {
		n := len(b)
		if split {
			n = min(n, 1+rng.IntN(96<<10))
		}
		pieces, b = append(pieces, b[:n]), b[n:]
	}
	nc, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	wrote := make(chan struct{})
	defer func() { _ = nc.Close(); <-wrote }()
	go func() { // write while the answer is read: a 413 may come early
		defer close(wrote)
		for _, p := range pieces {
			if _, err := nc.Write(p); err != nil {
				return
			}
			if split {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Errorf("POST /echo of %d bytes (chunked %v, split %v): %v", len(body), chunked, split, err)
		return nil, 0
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return nil, resp.StatusCode
	}
	if i := bytes.Index(raw, []byte("HTTP/1.1 ")); i >= 0 {
		t.Errorf("POST /echo of %d bytes: another response inside the reply at byte %d: %.120q", len(body), i, raw[i:])
		return nil, resp.StatusCode
	}
	var echo struct{ Body string }
	if err := json.Unmarshal(raw, &echo); err != nil {
		t.Errorf("POST /echo of %d bytes: %v", len(body), err)
	}
	return []byte(echo.Body), resp.StatusCode
}

// assertSameWorkers fails if a worker died or was replaced since before.
func assertSameWorkers(t *testing.T, c *cluster, before map[int]int) {
	t.Helper()
	time.Sleep(100 * time.Millisecond) // a crash is logged within this
	if n := c.countLogs("worker exited unexpectedly"); n > 0 {
		t.Errorf("%d workers crashed", n)
	}
	after := c.livePids()
	for id, pid := range before {
		if after[id] != pid {
			t.Errorf("worker %d: pid %d, now %d: it died", id, pid, after[id])
		}
	}
}
