package master

import (
	"bufio"
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

	"github.com/clusterd/clusterd/ipc"
)

// worker is the master's record of one worker process. Only the supervisor
// goroutine reads or writes it after start.
type worker struct {
	slot       int
	generation int
	pid        int
	proc       *os.Process
	conn       *ipc.Conn
	log        hclog.Logger
	state      State
	started    time.Time
	readyAt    time.Time
	lastTick   time.Time // when its event loop last turned, as of its last heartbeat
	drainBy    time.Time
	requests   uint64
	conns      int64
	killReason string // why the master killed it, if it did
}

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
}

// startWorker starts a worker process and the goroutines that report its
// messages and its exit to the supervisor as events.
func (m *Master) startWorker(spec spawnSpec) (*worker, error) {
	parent, child, err := ipc.Socketpair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	conn, err := ipc.NewConn(parent)
	_ = parent.Close()
	if err != nil {
		return nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	cmd := m.command(spec, child, errW)
	err = cmd.Start()
	_ = errW.Close()
	if err != nil {
		_ = conn.Close()
		_ = errR.Close()
		return nil, fmt.Errorf("start worker %d: %w", spec.slot, err)
	}
	w := &worker{
		slot:       spec.slot,
		generation: spec.generation,
		pid:        cmd.Process.Pid,
		proc:       cmd.Process,
		conn:       conn,
		state:      Starting,
		started:    time.Now(),
	}
	w.lastTick = w.started
	w.log = m.log.Named("worker").With("id", w.slot, "pid", w.pid)
	w.log.Debug("started", "generation", w.generation)
	m.workers[w] = struct{}{}
	m.wg.Add(1)
	go m.watch(w, cmd, errR)
	return w, nil
}

func (m *Master) command(spec spawnSpec, child, stderr *os.File) *exec.Cmd {
	cmd := exec.Command(m.cfg.Command[0], m.cfg.Command[1:]...)
	cmd.Env = append(workerEnv(os.Environ()),
		ipc.EnvWorkerID+"="+strconv.Itoa(spec.slot),
		ipc.EnvGeneration+"="+strconv.Itoa(spec.generation),
		ipc.EnvFD+"=3",
		m.listenEnv(),
	)
	cmd.ExtraFiles = []*os.File{child} // fd 3 in the child
	cmd.Stdout = os.Stdout
	cmd.Stderr = stderr
	// Own process group: a terminal's ^C reaches the master only, which
	// then stops the workers in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// workerEnv drops any clusterd variables the master itself inherited.
func workerEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, "CLUSTERD_WORKER_") && !strings.HasPrefix(kv, ipc.EnvFD+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// watch forwards the worker's messages and stderr, then reports its exit
// once both are done, so every message and log line precedes the exit.
func (m *Master) watch(w *worker, cmd *exec.Cmd, stderr *os.File) {
	defer m.wg.Done()
	logged := make(chan struct{})
	go func() { forwardLog(w.log, stderr); close(logged) }()
	received := make(chan struct{})
	go func() { m.receive(w); close(received) }()
	waitErr := cmd.Wait()
	// The worker leads its own process group: what it started ends with it.
	if err := syscall.Kill(-w.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		w.log.Warn("cannot kill the worker's process group", "error", err)
	}
	// A process that left the group may still hold the channel or the
	// pipe: read what the worker left there, but not for ever.
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
	m.send(event{w: w, exited: true, err: waitErr})
}

// logGrace bounds the wait for the rest of an exited worker's messages and stderr.
const logGrace = time.Second

// closed is a channel that is always ready.
var closed = func() <-chan time.Time { c := make(chan time.Time); close(c); return c }()

// receive passes the worker's messages to the supervisor until the channel ends.
func (m *Master) receive(w *worker) {
	for {
		msg, files, err := w.conn.Recv()
		var bad *ipc.FrameError
		if errors.As(err, &bad) {
			w.log.Warn("bad message from worker", "error", err)
			continue
		}
		if err != nil {
			if err != io.EOF && !errors.Is(err, ipc.ErrClosed) {
				w.log.Warn("channel to worker failed", "error", err)
			}
			return
		}
		m.send(event{w: w, msg: &msg, files: files})
	}
}

// forwardLog re-logs the worker's stderr through its named logger: JSON
// lines from the worker's hclog keep their level and fields; anything else
// (a panic, a stray print) is logged line by line as it came.
func forwardLog(log hclog.Logger, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec map[string]any
		if len(line) > 0 && line[0] == '{' && json.Unmarshal(line, &rec) == nil {
			if msg, ok := rec["@message"].(string); ok {
				lvl, _ := rec["@level"].(string)
				log.Log(hclog.LevelFromString(lvl), msg, fields(rec)...)
				continue
			}
		}
		log.Info("stderr", "line", string(line))
	}
}

func fields(rec map[string]any) []any {
	keys := make([]string, 0, len(rec))
	for k := range rec {
		if !strings.HasPrefix(k, "@") {
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
