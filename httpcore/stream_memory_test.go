package httpcore

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/clusterd/clusterd/internal/testmem"
)

// The memory tests send 100 MB to a client that reads 64 KiB per
// millisecond or so, far slower than the server could produce it, and sample
// the process heap (server and client) every 20 ms. Without backpressure the
// server would buffer most of the 100 MB.

const (
	bigTransfer = 100 << 20
	heapBound   = 32 << 20
	readPause   = time.Millisecond
)

func TestSendFileMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB transfer")
	}
	name := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(bigTransfer); err != nil { // sparse: no disk space used
		t.Fatal(err)
	}
	f.Close()
	h := HandlerFunc(func(w *ResponseWriter, r *Request) {
		f, err := os.Open(name)
		if err != nil {
			w.WriteHeader(500)
			return
		}
		_ = w.SendFile(f, 0, bigTransfer)
	})
	checkSlowTransfer(t, startServer(t, Config{}, h), "sendfile")
}

// checkSlowTransfer fetches bigTransfer bytes from ts with a slow reader and
// checks the heap stayed under heapBound.
func checkSlowTransfer(t *testing.T, ts *testServer, what string) {
	c := ts.dial(t)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	heap := testmem.StartHeapSampler()
	start := time.Now()
	c.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	resp, err := readResp(c, "GET")
	if err != nil {
		t.Fatal(err)
	}
	got, err := testmem.SlowRead(resp.Body, bigTransfer+1, readPause)
	elapsed := time.Since(start)
	base, peak := heap.Finish()
	if got != bigTransfer || err == nil {
		t.Fatalf("read %d bytes (%v), want %d then EOF", got, err, bigTransfer)
	}
	t.Logf("%s: %d MB to a slow reader in %v (%.0f MB/s); heap before %.1f MiB, peak %.1f MiB (+%.1f MiB)",
		what, got>>20, elapsed.Round(time.Millisecond), float64(got)/1e6/elapsed.Seconds(),
		float64(base)/mib, float64(peak)/mib, float64(peak-min(base, peak))/mib)
	if peak > base+heapBound {
		t.Fatalf("heap grew by %d MiB, bound %d MiB", (peak-base)>>20, heapBound>>20)
	}
}
