package worker

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/ipc"
)

// testProc is a worker's proc with a running event loop, talking to the
// test, which plays the master, over a real channel.
func testProc(t *testing.T, cfg httpcore.Config) (p *proc, master *ipc.Conn) {
	t.Helper()
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	mine, err := ipc.NewConn(a)
	_ = a.Close()
	if err != nil {
		t.Fatal(err)
	}
	master, err = ipc.NewConn(b)
	_ = b.Close()
	if err != nil {
		t.Fatal(err)
	}
	srv := httpcore.NewServer(cfg, httpcore.HandlerFunc(func(w *httpcore.ResponseWriter, r *httpcore.Request) {
		_, _ = w.WriteString("ok\n")
	}))
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(nil) }()
	t.Cleanup(func() {
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
		if err := <-errc; err != nil && err != httpcore.ErrServerClosed {
			t.Error(err)
		}
		_ = mine.Close()
		_ = master.Close()
	})
	return &proc{conn: mine, log: hclog.NewNullLogger(), srv: srv}, master
}

// connPair returns a connected pair of stream sockets: the server's end
// as a bare descriptor, the client's as a file.
func connPair(t *testing.T) (int, *os.File) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	c := os.NewFile(uintptr(fds[1]), "client")
	t.Cleanup(func() { _ = c.Close() })
	return fds[0], c
}

// TestHandoffOfIdleConns: connections handed over as idle (given away by
// another worker) are served as keep-alive connections between requests:
// one that sends nothing is closed after the idle timeout, not the header
// timeout, and they do not count as accepted; new ones do.
func TestHandoffOfIdleConns(t *testing.T) {
	p, master := testProc(t, httpcore.Config{IdleTimeout: 200 * time.Millisecond, HeaderTimeout: 5 * time.Second})
	idleFD, idle := connPair(t)
	newFD, fresh := connPair(t)
	start := time.Now()
	p.serveHandoff(ipc.Message{Type: ipc.Handoff, Seq: 7, Idle: true}, []int{idleFD})
	p.serveHandoff(ipc.Message{Type: ipc.Handoff, Seq: 8}, []int{newFD})
	for _, seq := range []uint64{7, 8} {
		msg, _, err := master.Recv()
		if err != nil || msg.Type != ipc.HandoffReply || msg.Seq != seq || msg.Err != "" {
			t.Fatalf("reply %+v, %v; want a HandoffReply for %d serving it", msg, err, seq)
		}
	}
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, _ := io.ReadAll(idle); len(b) != 0 {
		t.Errorf("the idle connection got %q, want a silent close", b)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("idle connection closed %v after the hand-off, want about the idle timeout (200ms)", took)
	}
	_, _ = io.WriteString(fresh, "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	if b, _ := io.ReadAll(fresh); !strings.HasSuffix(string(b), "\r\n\r\nok\n") {
		t.Errorf("the new connection, past the idle timeout: %q", b)
	}
	waitStats(t, p, func(st httpcore.Stats) bool {
		return st.Requests == 1 && st.Connections == 0 && st.Counters.Accepted >= 1
	})
	if n := p.srv.Stats().Counters.Accepted; n != 1 {
		t.Errorf("Accepted = %d, want 1: the idle connection was accepted by the worker that gave it away", n)
	}
}

// waitStats waits up to 5 s for the loop's published statistics to
// satisfy cond.
func waitStats(t *testing.T, p *proc, cond func(httpcore.Stats) bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(p.srv.Stats()); {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", p.srv.Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
