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
	mine, master := ipcPair(t)
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
	})
	return &proc{conn: mine, log: hclog.NewNullLogger(), srv: srv}, master
}

// ipcPair returns the two ends of a channel between a worker and its
// master, closed when the test ends.
func ipcPair(t *testing.T) (mine, master *ipc.Conn) {
	t.Helper()
	a, b, err := ipc.Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	mine, err = ipc.NewConn(a)
	_ = a.Close()
	if err != nil {
		_ = b.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mine.Close() })
	master, err = ipc.NewConn(b)
	_ = b.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Close() })
	return mine, master
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

// TestPasserKeepsConnsUntilAnswered: the passer keeps its copies of the
// connections it passed until the master answers: those the master did
// not receive are served here again, the others closed here.
func TestPasserKeepsConnsUntilAnswered(t *testing.T) {
	mine, master := ipcPair(t)
	ps := newPasser(mine, hclog.NewNullLogger(), true)
	served := make(chan int, 4)
	ps.serve = func(fd int) error { served <- fd; return nil }
	go ps.run()
	defer ps.stop()

	// pass gives the passer one connection and plays the master
	// receiving its Pass, whose descriptor it closes; it returns the
	// Pass and the client's end.
	pass := func() (ipc.Message, *os.File) {
		fd, client := connPair(t)
		if !ps.take(fd) {
			t.Fatal("the passer took no connection")
		}
		msg, files, err := master.Recv()
		if err != nil || msg.Type != ipc.Pass || msg.Seq == 0 || len(files) != 1 {
			t.Fatalf("master got %+v with %d files, %v; want a numbered Pass of 1", msg, len(files), err)
		}
		closeAll(files)
		return msg, client
	}
	// answer sends the master's answer and has the passer settle it, as
	// the worker's reader of the channel does.
	answer := func(reply ipc.Message) {
		if err := master.Send(reply); err != nil {
			t.Fatal(err)
		}
		msg, _, err := mine.Recv()
		if err != nil || msg.Type != ipc.PassReply {
			t.Fatalf("worker got %+v, %v; want the PassReply", msg, err)
		}
		ps.settle(msg)
	}

	// Not received (the master at its descriptor limit): served again,
	// on the same, still open, connection.
	msg, client := pass()
	select {
	case fd := <-served:
		t.Fatalf("connection %d served again before the master answered", fd)
	case <-time.After(50 * time.Millisecond):
	}
	answer(ipc.Message{Type: ipc.PassReply, Seq: msg.Seq, Err: "control data truncated"})
	var fd int
	select {
	case fd = <-served:
	case <-time.After(5 * time.Second):
		t.Fatal("a connection the master did not receive was not served again")
	}
	if _, err := unix.Write(fd, []byte("still here")); err != nil {
		t.Fatalf("write on the connection served again: %v", err)
	}
	buf := make([]byte, 16)
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "still here" {
		t.Fatalf("client read %q, %v", buf[:n], err)
	}
	_ = unix.Close(fd)

	// Received: the passer closes its copy; with the master's closed
	// too, the client sees the end.
	msg, client = pass()
	answer(ipc.Message{Type: ipc.PassReply, Seq: msg.Seq})
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := client.Read(buf); err != io.EOF {
		t.Fatalf("client read %q, %v; want EOF once both copies are closed", buf[:n], err)
	}
	if n := ps.held.Load(); n != 0 {
		t.Errorf("the passer holds %d connections, want 0", n)
	}
	if len(served) != 0 {
		t.Errorf("%d more connections served again, want none", len(served))
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
