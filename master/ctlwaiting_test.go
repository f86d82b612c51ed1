package master

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestSilentControlClientIsCutShort: with every control slot held by a
// client that has sent nothing, one more client makes one of them be
// answered and closed after controlCutAge, not after controlReadTimeout.
func TestSilentControlClientIsCutShort(t *testing.T) {
	m, err := New(Config{Command: []string{"true"}, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	m.wg.Add(1)
	go m.serveControl(ln)
	defer func() { close(m.done); _ = ln.Close(); m.wg.Wait() }()
	var silent []net.Conn
	defer func() {
		for _, c := range silent {
			_ = c.Close()
		}
	}()
	for i := 0; i < maxControlConns+1; i++ {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)

	}
	// One of the first maxControlConns clients is answered and closed.
	start := time.Now()
	answers := make(chan string, maxControlConns)
	for _, c := range silent[:maxControlConns] {
		go func() {
			_ = c.SetReadDeadline(start.Add(controlReadTimeout / 2))
			buf := make([]byte, 512)
			n, _ := c.Read(buf)
			answers <- string(buf[:n])
		}()
	}
	cut := 0
	for range maxControlConns {
		if a := <-answers; a != "" {
			if !strings.Contains(a, "bad request") {
				t.Errorf("a silent client was told %q", a)
			}
			if cut++; cut == 1 {
				t.Logf("first cut after %v", time.Since(start))
			}
		}
	}
	if cut != 1 {
		t.Errorf("%d silent clients cut short to make room for 1 (within %v), want 1", cut, controlReadTimeout/2)
	}
}
