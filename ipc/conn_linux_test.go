package ipc

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/rawfd"
)

func pair(t *testing.T) (*Conn, *Conn) {
	t.Helper()
	a, b, err := Socketpair()
	if err != nil {
		t.Fatal(err)
	}
	ca, err := NewConn(a)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := NewConn(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = b.Close()
	t.Cleanup(func() { _ = ca.Close(); _ = cb.Close() })
	return ca, cb
}

func TestRoundTrip(t *testing.T) {
	ca, cb := pair(t)
	msgs := []Message{
		{Type: Online, PID: 42},
		{Type: QueryServer, Network: "tcp", Addr: "127.0.0.1:0"},
		{Type: Heartbeat, Requests: 1 << 40, Connections: 7},
		{Type: ServerReply, Key: "tcp:x", Err: "address in use"},
		{Type: Drain},
		{Type: ServerReply, Key: "tcp:x", RR: true},
		{Type: HandoffReply, Seq: 1 << 60},
		{Type: HandoffReply, Seq: 2, Err: "draining"},
		{Type: HandoffReply, Seq: 3, N: MaxHandoff, Refused: []uint64{4, 9}, Err: "EMFILE"},
		{Type: TicketKeys, Keys: [][]byte{bytes.Repeat([]byte{1}, TicketKeyLen), make([]byte, TicketKeyLen)}},
		{Type: PassReply, Seq: 5, N: 3},
		{Type: PassReply, Seq: 6, Err: "ipc: recv: control data truncated"},
	}
	for _, m := range msgs {
		if err := ca.Send(m); err != nil {
			t.Fatalf("send %v: %v", m.Type, err)
		}
		got, files, err := cb.Recv()
		if err != nil {
			t.Fatalf("recv %v: %v", m.Type, err)
		}
		if !reflect.DeepEqual(got, m) || len(files) != 0 {
			t.Errorf("got %+v (%d files), want %+v", got, len(files), m)
		}
	}
}

// TestPassFD sends a pipe's write end and checks the received descriptor is
// the same open file (writes through it arrive) and is close-on-exec.
func TestPassFD(t *testing.T) {
	ca, cb := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := ca.Send(Message{Type: ServerReply, Key: "k"}, w); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	m, files, err := cb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if m.Key != "k" || len(files) != 1 {
		t.Fatalf("got %+v with %d files", m, len(files))
	}
	defer files[0].Close()
	flags, err := unix.FcntlInt(uintptr(mustFD(t, files[0])), unix.F_GETFD, 0)
	if err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("received fd flags %#x, err %v: want FD_CLOEXEC", flags, err)
	}
	if _, err := files[0].WriteString("hi"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "hi" {
		t.Errorf("read %q, %v", buf, err)
	}
}

func TestEOF(t *testing.T) {
	ca, cb := pair(t)
	_ = ca.Close()
	if _, _, err := cb.Recv(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

// rawSend writes an arbitrary datagram with optional fds.
func rawSend(t *testing.T, c *Conn, frame []byte, fds ...int) {
	t.Helper()
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.uc.WriteMsgUnix(frame, oob, nil); err != nil {
		t.Fatal(err)
	}
}

func TestMalformed(t *testing.T) {
	good, _ := (&Message{Type: Drain}).marshal()
	big := append([]byte{'c', 'd', Version, byte(Heartbeat)}, strings.Repeat(" ", MaxBody+10)...)
	tests := []struct {
		name  string
		frame []byte
		fds   int
		want  string
	}{
		{"short", []byte("cd"), 0, "short frame"},
		{"magic", []byte("xx\x01\x07{}"), 0, "bad magic"},
		{"version", []byte("cd\x09\x07{}"), 0, "protocol version 9"},
		{"unknown type", []byte("cd\x01\xee{}"), 0, "unknown message"},
		{"bad json", []byte("cd\x01\x01{pid:"), 0, "online body"},
		{"oversized", big, 0, "larger than"},
		{"unexpected fd", good, 1, "got 1 fds, want 0"},
		{"reply without fd", []byte(`cd` + "\x01\x03" + `{"key":"k"}`), 0, "got 0 fds, want 1"},
		{"rr reply with fd", []byte(`cd` + "\x01\x03" + `{"key":"k","rr":true}`), 1, "got 1 fds, want 0"},
		{"handoff without fd", []byte(`cd` + "\x01\x08" + `{"seq":1}`), 0, "got 0 fds, want 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ca, cb := pair(t)
			var fds []int
			var r, w *os.File
			if tt.fds > 0 {
				var err error
				r, w, err = os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				fds = append(fds, int(w.Fd()))
			}
			rawSend(t, ca, tt.frame, fds...)
			if w != nil {
				_ = w.Close()
			}
			_, files, err := cb.Recv()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
			if files != nil {
				t.Errorf("files returned with an error")
			}
			if r != nil {
				// The unexpected fd was closed: the pipe's only writer is gone.
				buf := make([]byte, 1)
				if n, err := r.Read(buf); n != 0 || !errors.Is(err, io.EOF) {
					t.Errorf("pipe read = %d, %v: the passed fd leaked", n, err)
				}
			}
			// The connection is still usable after a bad frame.
			if err := ca.Send(Message{Type: Drain}); err != nil {
				t.Fatal(err)
			}
			if m, _, err := cb.Recv(); err != nil || m.Type != Drain {
				t.Errorf("after bad frame: %+v, %v", m, err)
			}
		})
	}
}

func TestSendChecksFDCount(t *testing.T) {
	ca, _ := pair(t)
	if err := ca.Send(Message{Type: ServerReply, Key: "k"}); err == nil {
		t.Error("ServerReply without fd was sent")
	}
	if err := ca.Send(Message{Type: Type(200)}); err == nil {
		t.Error("unknown type was sent")
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte("cd\x01\x01{\"pid\":1}"))
	f.Add([]byte("cd\x01\x03{\"key\":\"k\",\"err\":\"x\"}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshal(b)
		if err == nil && !m.Type.Valid() {
			t.Fatalf("accepted invalid type %v", m.Type)
		}
	})
}

// TestSendKeepsNonblocking: passing a listening socket must not switch it
// to blocking mode. The flag belongs to the open file, which every worker
// shares; a blocking accept would stall their event loops.
func TestSendKeepsNonblocking(t *testing.T) {
	ca, cb := pair(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := mustFD(t, f)
	if err := unix.SetNonblock(fd, true); err != nil {
		t.Fatal(err)
	}
	if err := ca.Send(Message{Type: ServerReply, Key: "k"}, f); err != nil {
		t.Fatal(err)
	}
	_, files, err := cb.Recv()
	if err != nil {
		t.Fatal(err)
	}
	defer files[0].Close()
	for _, fd := range []int{fd, mustFD(t, files[0])} {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
		if err != nil || flags&unix.O_NONBLOCK == 0 {
			t.Errorf("fd %d lost O_NONBLOCK (flags %#x, %v)", fd, flags, err)
		}
	}
}

func mustFD(t *testing.T, f *os.File) int {
	t.Helper()
	fd, err := rawfd.Of(f)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

// TestHandoffBatch: a Handoff carries N descriptors, 1 to MaxHandoff; a
// count that does not match the descriptors, or is out of range, is a
// frame error and every descriptor that came is closed.
func TestHandoffBatch(t *testing.T) {
	ca, cb := pair(t)
	var files []*os.File
	for i := 0; i < MaxHandoff+1; i++ {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		files = append(files, w)
	}
	for _, n := range []int{1, 2, MaxHandoff} {
		msg := Message{Type: Handoff, Seq: 10, N: n}
		if n == 1 {
			msg.N = 0
		}
		if err := ca.Send(msg, files[:n]...); err != nil {
			t.Fatalf("send %d: %v", n, err)
		}
		got, fs, err := cb.Recv()
		if err != nil || got.Conns() != n || len(fs) != n {
			t.Fatalf("batch of %d: %+v, %d files, %v", n, got, len(fs), err)
		}
		closeAll(fs)
	}
	if err := ca.Send(Message{Type: Handoff, N: 3}, files[:2]...); err == nil {
		t.Error("a Handoff of 3 with 2 fds was sent")
	}
	if err := ca.Send(Message{Type: Handoff, N: MaxHandoff + 1}, files...); err == nil {
		t.Error("a Handoff above MaxHandoff was sent")
	}
}

// TestTruncatedHandoffKeepsMessage: a Handoff whose descriptors did not all
// arrive is a frame error that still names the Handoff, so the receiver
// can refuse its Seq; the descriptors that did arrive are closed.
func TestTruncatedHandoffKeepsMessage(t *testing.T) {
	ca, cb := pair(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	fds := make([]int, MaxHandoff+1) // one more than a receiver takes
	for i := range fds {
		fds[i] = int(w.Fd())
	}
	m := Message{Type: Handoff, Seq: 77, N: 2}
	frame, err := m.marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ca.uc.WriteMsgUnix(frame, unix.UnixRights(fds...), nil); err != nil {
		t.Fatal(err)
	}
	got, files, err := cb.Recv()
	var fe *FrameError
	if !errors.As(err, &fe) || got.Type != Handoff || got.Seq != 77 || got.Conns() != 2 || files != nil {
		t.Fatalf("got %+v, %d files, %v; want a frame error naming Handoff 77 of 2", got, len(files), err)
	}
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
