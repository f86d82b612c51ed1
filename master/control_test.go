package master

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// flakyAcceptor fails with EMFILE a number of times, then hands out conns.
type flakyAcceptor struct {
	mu    sync.Mutex
	fails int
	conns chan *net.UnixConn
}

func (a *flakyAcceptor) AcceptUnix() (*net.UnixConn, error) {
	a.mu.Lock()
	if a.fails > 0 {
		a.fails--
		a.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "unix", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	a.mu.Unlock()
	c, ok := <-a.conns
	if !ok {
		return nil, net.ErrClosed
	}
	return c, nil
}

// unixPair returns the two ends of a connected unix stream socket pair.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "pair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

// TestControlSurvivesEMFILE: accept failures (a full descriptor table) do
// not end the control socket; they are retried and logged once per burst.
func TestControlSurvivesEMFILE(t *testing.T) {
	var logs strings.Builder
	var logMu sync.Mutex
	m, err := New(Config{Command: []string{"true"}, Logger: hclog.New(&hclog.LoggerOptions{
		Output: &lockedWriter{w: &logs, mu: &logMu}, Level: hclog.Debug})})
	if err != nil {
		t.Fatal(err)
	}
	ln := &flakyAcceptor{fails: 5, conns: make(chan *net.UnixConn, 1)}
	m.wg.Add(1)
	go m.serveControl(ln)
	server, client := unixPair(t)
	defer client.Close()
	ln.conns <- server
	go func() { (<-m.events)() }() // plays the supervisor
	if _, err := client.Write([]byte(`{"cmd":"status"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	n, err := client.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), `"ok":true`) {
		t.Fatalf("answer after EMFILE: %q, %v", buf[:n], err)
	}
	close(ln.conns)
	close(m.done)
	m.wg.Wait()
	logMu.Lock()
	defer logMu.Unlock()
	if got := strings.Count(logs.String(), "accept failed"); got != 1 {
		t.Errorf("%d accept failure lines for a burst of 5; want 1:\n%s", got, logs.String())
	}
}

type lockedWriter struct {
	w  *strings.Builder
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestBurst(t *testing.T) {
	b := newBurst(time.Second)
	t0 := time.Unix(1000, 0)
	steps := []struct {
		at    time.Duration
		ok    bool
		quiet int
	}{
		{0, true, 0}, {time.Millisecond, false, 0}, {999 * time.Millisecond, false, 0},
		{time.Second, true, 2}, {time.Second + 1, false, 0}, {5 * time.Second, true, 1}, {6 * time.Second, true, 0},
	}
	for _, s := range steps {
		ok, quiet := b.allow(t0.Add(s.at))
		if ok != s.ok || quiet != s.quiet {
			t.Errorf("at %v: allow = %v, %d; want %v, %d", s.at, ok, quiet, s.ok, s.quiet)
		}
	}
}

func TestAcceptRetry(t *testing.T) {
	var r acceptRetry
	want := []time.Duration{5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000}
	for i, w := range want {
		if got := r.next(); got != w*time.Millisecond {
			t.Errorf("retry %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	r.reset()
	if got := r.next(); got != acceptRetryMin {
		t.Errorf("after reset: %v", got)
	}
}

func TestEnsureControlDir(t *testing.T) {
	base := t.TempDir()
	mk := func(name string, mode os.FileMode) string {
		p := filepath.Join(base, name)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(mk("target", 0o700), link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dir  string
		want string // "" for accepted
	}{
		{filepath.Join(base, "new"), ""},
		{mk("private", 0o700), ""},
		{mk("readable", 0o755), ""},
		{mk("open", 0o777), "writable by group or others"},
		{mk("group", 0o770), "writable by group or others"},
		{mk("sticky", os.ModeSticky|0o777), "writable by group or others"},
		{file, "not a directory"},
		{link, "not a directory"},
	}
	if os.Getuid() == 0 {
		foreign := mk("foreign", 0o700)
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct{ dir, want string }{foreign, "belongs to uid 65534"})
	}
	for _, tt := range tests {
		err := ensureControlDir(tt.dir)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("ensureControlDir(%s) = %v; want %q", filepath.Base(tt.dir), err, tt.want)
		}
	}
	if fi, err := os.Stat(filepath.Join(base, "new")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("new control dir: %v %v", fi.Mode(), err)
	}
}

func TestCheckSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := checkSocket(path); err != nil {
		t.Errorf("own socket refused: %v", err)
	}
	if err := checkSocket(filepath.Join(dir, "none")); err == nil || !strings.Contains(err.Error(), "no clusterd master") {
		t.Errorf("missing socket: %v", err)
	}
	plain := filepath.Join(dir, "plain")
	_ = os.WriteFile(plain, nil, 0o600)
	if err := checkSocket(plain); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("plain file: %v", err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "writable by group or others") {
		t.Errorf("socket in an open directory: %v", err)
	}
	_ = os.Chmod(dir, os.ModeSticky|0o777) // sticky, as /tmp: others cannot replace it
	if err := checkSocket(path); err != nil {
		t.Errorf("socket in a sticky directory: %v", err)
	}
	if os.Getuid() != 0 {
		return
	}
	if err := os.Lchown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("foreign socket: %v", err)
	}
	_ = os.Lchown(path, 0, 0)
	_ = os.Chmod(dir, 0o700)
	_ = os.Chown(dir, 65534, 65534)
	defer os.Chown(dir, 0, 0)
	if err := checkSocket(path); err == nil || !strings.Contains(err.Error(), "belongs to uid 65534") {
		t.Errorf("socket in a foreign directory: %v", err)
	}
}

// TestControlFloodOfSilentClients: silent connections beyond
// maxSilentControl close the oldest of them, so a client that speaks at
// once is answered at once, however many silent ones came before it.
func TestControlFloodOfSilentClients(t *testing.T) {
	m, err := New(Config{Command: []string{"true"}, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	const silent = 5 * maxSilentControl
	ln := &flakyAcceptor{conns: make(chan *net.UnixConn, silent+1)}
	m.wg.Add(1)
	go m.serveControl(ln)
	var quiet []*net.UnixConn
	for range silent {
		server, client := unixPair(t)
		quiet = append(quiet, client)
		ln.conns <- server
	}
	server, client := unixPair(t)
	defer client.Close()
	ln.conns <- server
	go func() { (<-m.events)() }() // plays the supervisor
	if _, err := client.Write([]byte(`{"cmd":"status"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(time.Second)) // well under controlReadTimeout
	buf := make([]byte, 512)
	n, err := client.Read(buf)
	if err != nil || !strings.Contains(string(buf[:n]), `"ok":true`) {
		t.Fatalf("answer behind %d silent clients: %q, %v", silent, buf[:n], err)
	}
	closed := 0
	for _, c := range quiet {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(buf); err == io.EOF {
			closed++
		}
		_ = c.Close()
	}
	if want := silent - maxSilentControl; closed < want {
		t.Errorf("%d of %d silent clients closed; want at least %d", closed, silent, want)
	}
	close(ln.conns)
	close(m.done)
	m.wg.Wait()
}

// Control gives up on a master that accepts but does not answer, or that
// hangs up, with ErrNoAnswer.
func TestControlNoAnswer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 2)
	go func() {
		for i := 0; i < 2; i++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	start := time.Now()
	_, err = Control(path, Request{Cmd: "status"}, 100*time.Millisecond)
	if !errors.Is(err, ErrNoAnswer) || !strings.Contains(err.Error(), "within 100ms") || time.Since(start) > 3*time.Second {
		t.Errorf("silent master: %v after %v", err, time.Since(start))
	}
	(<-held).Close()
	go func() { (<-held).Close() }() // hangs up at once
	if _, err := Control(path, Request{Cmd: "status"}, 5*time.Second); !errors.Is(err, ErrNoAnswer) {
		t.Errorf("master hanging up: %v", err)
	}
}

func TestPendingEvery(t *testing.T) {
	for _, tt := range []struct {
		waitMS int64
		want   time.Duration
	}{
		{0, controlPending}, {5000, controlPending}, {2000, controlPending},
		{1000, 500 * time.Millisecond}, {300, 150 * time.Millisecond}, {1, 10 * time.Millisecond},
	} {
		if got := (Request{WaitMS: tt.waitMS}).pendingEvery(); got != tt.want {
			t.Errorf("wait %dms: every %v, want %v", tt.waitMS, got, tt.want)
		}
	}
}
