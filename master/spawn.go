package master

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/internal/scoreboard"
	"github.com/clusterd/clusterd/ipc"
)

// worker is the master's record of one worker process. Only the supervisor
// goroutine reads or writes it after start.
type worker struct {
	slot       int
	generation int
	pid        int
	proc       process
	conn       *ipc.Conn
	log        hclog.Logger
	state      State
	started    time.Time
	readyAt    time.Time
	lastTick   time.Time // when its event loop last turned, as of its last heartbeat
	drainBy    time.Time
	stopped    bool // it said it accepts no more connections (ipc.Stopped)
	requests   uint64
	conns      int64
	handed     int64     // connections handed to it since its last heartbeat
	killReason string    // why the master killed it, if it did
	dumpAt     time.Time // when the master asked it for a goroutine dump
	board      *scoreboard.Board
	boardSlot  int // its slot on board; -1: none
}

// load is the worker's open connections as least-conns counts them.
func (w *worker) load() int64 { return w.conns + w.handed }

// setState is the only place a worker's state changes.
func (w *worker) setState(to State) bool {
	if !canMove(w.state, to) {
		if w.state != to {
			w.log.Debug("ignored state change", "from", w.state, "to", to)
		}
		return false
	}
	w.log.Trace("state", "from", w.state, "to", to)
	w.state = to
	w.boardState()
	return true
}

// killedFor is the log fields saying why the master killed w, if it did.
func (w *worker) killedFor() []any {
	if w.killReason == "" {
		return nil
	}
	return []any{"killed_because", w.killReason}
}

// spawnSpec says what to start for one worker.
type spawnSpec struct {
	slot, generation int
	listen           []string // the listeners the worker serves (ipc.EnvListen)
	procs            int      // the worker's GOMAXPROCS; 0: the Go default
	board            *os.File // the scoreboard, nil: none (ipc.EnvBoardFD)
	baton            *os.File // its eventfd (ipc.EnvBoardBatonFD)
	boardSlot        int      // the worker's slot on it (ipc.EnvBoardSlot)
	boardPass        bool     // it passes connections over its share (ipc.EnvBoardPass)
}

// startWorker starts a worker and the goroutine that reports its messages
// and its exit to the supervisor.
func (m *Master) startWorker(spec spawnSpec) (*worker, error) {
	spec.listen = m.listenKeys
	spec.procs = workerProcs(m.cpus, max(m.cfg.Workers, len(m.slots)))
	spec.boardSlot = m.claimBoardSlot()
	if spec.boardSlot >= 0 {
		spec.board, spec.baton = m.boardFile, m.baton
		spec.boardPass = m.cfg.Sched == SchedReuseport
	}
	sp, err := m.spawner.spawn(spec)
	if err != nil {
		return nil, fmt.Errorf("start worker %d: %w", spec.slot, err)
	}
	w := &worker{
		slot:       spec.slot,
		generation: spec.generation,
		pid:        sp.proc.Pid(),
		proc:       sp.proc,
		conn:       sp.conn,
		state:      Starting,
		started:    m.now(),
		board:      m.board,
		boardSlot:  spec.boardSlot,
	}
	w.lastTick = w.started
	w.log = m.log.Named("worker").With("id", w.slot, "pid", w.pid)
	w.log.Debug("started", "generation", w.generation)
	m.workers[w] = struct{}{}
	m.wg.Add(1)
	go m.watch(w, sp.stderr)
	return w, nil
}

// execSpawner starts each worker by executing command (this program,
// again) with the worker's end of its channel as fd 3.
type execSpawner struct {
	command []string
	cred    *syscall.Credential // the workers' user; nil: the master's
}

func (e execSpawner) spawn(spec spawnSpec) (spawned, error) {
	parent, child, err := ipc.Socketpair()
	if err != nil {
		return spawned{}, err
	}
	defer child.Close()
	conn, err := ipc.NewConn(parent)
	_ = parent.Close() // NewConn holds its own descriptor
	if err != nil {
		return spawned{}, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = conn.Close()
		return spawned{}, err
	}
	cmd := e.cmd(spec, child, errW)
	err = cmd.Start()
	_ = errW.Close() // the child has its copy
	if err != nil {
		_ = conn.Close()
		_ = errR.Close()
		return spawned{}, err
	}
	return spawned{proc: &execProc{cmd: cmd}, conn: conn, stderr: errR}, nil
}

func (e execSpawner) cmd(spec spawnSpec, child, stderr *os.File) *exec.Cmd {
	cmd := exec.Command(e.command[0], e.command[1:]...)
	cmd.Env = append(workerEnv(os.Environ()),
		ipc.EnvWorkerID+"="+strconv.Itoa(spec.slot),
		ipc.EnvGeneration+"="+strconv.Itoa(spec.generation),
		ipc.EnvFD+"=3",
		listenEnv(spec.listen),
	)
	if spec.procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(spec.procs))
	}
	cmd.ExtraFiles = []*os.File{child} // fd 3 in the child
	if spec.board != nil {
		cmd.ExtraFiles = append(cmd.ExtraFiles, spec.board, spec.baton) // fds 4 and 5
		cmd.Env = append(cmd.Env, ipc.EnvBoardFD+"=4", ipc.EnvBoardBatonFD+"=5", ipc.EnvBoardSlot+"="+strconv.Itoa(spec.boardSlot))
		if spec.boardPass {
			cmd.Env = append(cmd.Env, ipc.EnvBoardPass+"=1", ipc.EnvPassReply+"=1")
		}
	}
	cmd.Stdout = os.Stdout
	cmd.Stderr = stderr
	// Own process group: a terminal's ^C reaches the master only, which
	// then stops the workers in order; and the group ends with the worker.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: e.cred}
	return cmd
}

// execProc is a worker process that leads its own process group.
type execProc struct {
	cmd *exec.Cmd
}

func (p *execProc) Pid() int { return p.cmd.Process.Pid }

// Signal signals the worker's process group: the worker and what it started.
func (p *execProc) Signal(sig syscall.Signal) error {
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}

func (p *execProc) Wait() error {
	err := p.cmd.Wait()
	// What the worker started ends with it, and can no longer hold its
	// stderr or its channel open.
	if kerr := p.Signal(syscall.SIGKILL); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
		return errors.Join(err, fmt.Errorf("kill the worker's process group: %w", kerr))
	}
	return err
}

// workerProcs is the GOMAXPROCS each of n workers gets: the cpus shared
// among them, at least one, as nginx and Node run a thread per worker. A
// worker on one processor runs net/http handlers on its event loop's
// goroutine (httpcore.ResponseWriter.RunInline). 0, when the master was
// given GOMAXPROCS itself, leaves the workers the same.
func workerProcs(cpus, n int) int {
	if os.Getenv("GOMAXPROCS") != "" || n <= 0 {
		return 0
	}
	return max(1, cpus/n)
}

// workerEnv drops any clusterd variables the master itself inherited, and
// the service manager's.
func workerEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, ipc.EnvPrefix) && !hasAnyPrefix(kv, serviceManagerEnv) {
			out = append(out, kv)
		}
	}
	return out
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// watch forwards the worker's messages and stderr, then reports its exit
// once both are done, so every message and log line precedes the exit.
func (m *Master) watch(w *worker, stderr io.ReadCloser) {
	defer m.wg.Done()
	logged := make(chan struct{})
	go func() { forwardLog(w.log, stderr); close(logged) }()
	received := make(chan struct{})
	go func() { m.receive(w); close(received) }()
	waitErr := w.proc.Wait()
	// A process that left the worker's group may still hold the channel or
	// the pipe: read what the worker left there, but not for ever.
	grace := time.After(logGrace)
	for _, r := range []struct {
		done <-chan struct{}
		c    io.Closer
		what string
	}{{received, w.conn, "channel"}, {logged, stderr, "stderr"}} {
		select {
		case <-r.done:
		case <-grace:
			grace = closed
			w.log.Warn("worker exited but another process holds its " + r.what + "; no longer reading it")
			_ = r.c.Close()
			<-r.done
		}
	}
	_ = stderr.Close()
	m.send(func() { m.exited(w, waitErr) })
}

// logGrace bounds the wait for the rest of an exited worker's messages and stderr.
const logGrace = time.Second

// closed is a channel that is always ready.
var closed = func() <-chan time.Time { c := make(chan time.Time); close(c); return c }()

// receive passes the worker's messages to the supervisor until the channel ends.
func (m *Master) receive(w *worker) {
	for {
		msg, fds, err := w.conn.RecvFDs()
		var bad *ipc.FrameError
		if errors.As(err, &bad) {
			if msg.Type == ipc.Pass {
				m.passNotReceived(w, msg, err)
				continue
			}
			w.log.Warn("bad message from worker", "error", err)
			continue
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, ipc.ErrClosed) {
				w.log.Warn("channel to worker failed", "error", err)
			}
			return
		}
		if msg.Type == ipc.Pass {
			m.passReceived(w, msg, fds)
			continue
		}
		files := make([]*os.File, len(fds)) // none: no other message from a worker carries any
		for i, fd := range fds {
			files[i] = os.NewFile(uintptr(fd), "ipc-fd")
		}
		m.send(func() { m.message(w, msg, files) }, files...)
	}
}

// passReceived takes the connections of a Pass: it tells the worker at
// once, from the receiving goroutine, that it may close its copies, and
// then the supervisor hands them out.
func (m *Master) passReceived(w *worker, msg ipc.Message, fds []int) {
	if msg.Seq != 0 {
		reply := ipc.Message{Type: ipc.PassReply, Seq: msg.Seq, N: msg.N}
		if err := w.conn.Send(reply); err != nil {
			w.log.Debug("cannot answer a pass", "seq", msg.Seq, "error", err)
		}
	}
	m.rr.held.Add(int64(len(fds)))
	if !m.sendOrDone(func() { m.passOn(w, fds) }) {
		for _, fd := range fds {
			m.closeConn(fd)
		}
	}
}

// passNotReceived answers a Pass whose descriptors did not all arrive
// (those that did were closed): at the descriptor limit recvmsg drops
// them (MSG_CTRUNC). The worker, which kept its copies, serves them again.
func (m *Master) passNotReceived(w *worker, msg ipc.Message, why error) {
	n := msg.Conns()
	m.stats.passRefused.Add(uint64(n))
	if ok, quiet := m.passLog.allow(m.now()); ok {
		what := "it serves them again"
		if msg.Seq == 0 {
			what = "they are lost: the worker did not keep them (it does not wait for an answer)"
		}
		w.log.Warn("could not receive the connections a worker gave away (at the descriptor limit?): "+what,
			"conns", n, "error", why, "refusals_not_logged", quiet)
	}
	if msg.Seq == 0 {
		return
	}
	reply := ipc.Message{Type: ipc.PassReply, Seq: msg.Seq, N: msg.N, Err: why.Error()}
	if err := w.conn.Send(reply); err != nil {
		w.log.Debug("cannot answer a pass", "seq", msg.Seq, "error", err)
	}
}

// forwardLog re-logs the worker's stderr through its named logger, as the
// ipc package's worker log contract says.
func forwardLog(log hclog.Logger, r io.Reader) {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	truncated := false
	for {
		piece, err := br.ReadSlice('\n')
		if room := ipc.MaxLogLine + 1 - len(line); len(piece) > room { // +1: the newline
			piece, truncated = piece[:room], true
		}
		line = append(line, piece...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if line = bytes.TrimSuffix(line, []byte("\n")); len(line) > ipc.MaxLogLine {
			line = line[:ipc.MaxLogLine]
		}
		if len(line) > 0 || err == nil {
			forwardLine(log, line, truncated)
		}
		if err != nil {
			return
		}
		line, truncated = line[:0], false
		if cap(line) > 64<<10 {
			line = nil // a long line's buffer is not kept
		}
	}
}

// forwardLine re-logs one line of a worker's stderr.
func forwardLine(log hclog.Logger, line []byte, truncated bool) {
	var rec map[string]any
	if !truncated && len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &rec) == nil {
		if msg, ok := rec[ipc.LogMessage].(string); ok {
			lvl, _ := rec[ipc.LogLevel].(string)
			log.Log(hclog.LevelFromString(lvl), msg, fields(rec)...)
			return
		}
	}
	if truncated {
		log.Info("stderr", "line", string(line), "truncated", true)
		return
	}
	log.Info("stderr", "line", string(line))
}

func fields(rec map[string]any) []any {
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if !strings.HasPrefix(k, ipc.LogMetaPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	kv := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		kv = append(kv, k, rec[k])
	}
	return kv
}
