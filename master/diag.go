package master

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"
)

// dumpWait is how long a hung worker has to write its goroutine dump
// before it is killed.
const dumpWait = 2 * time.Second

// killHung asks a worker whose event loop is stuck for a goroutine dump
// (SIGQUIT: the worker writes every goroutine's stack to its stderr, which
// the master logs, and exits), so that the log shows where it was stuck;
// checkHealth kills it if it has not exited within dumpWait.
func (m *Master) killHung(w *worker, reason string) {
	if w.killReason != "" {
		return
	}
	w.killReason = reason
	if processStopped(w.pid) { // SIGSTOP: it cannot answer until it is continued
		m.killNow(w)
		return
	}
	w.dumpAt = m.now()
	w.log.Warn("worker hung: asking for a goroutine dump before killing it", "reason", reason)
	if err := w.proc.Signal(syscall.SIGQUIT); err != nil {
		if !errors.Is(err, os.ErrProcessDone) {
			w.log.Error("cannot ask for a goroutine dump", "error", err)
		}
		m.killNow(w)
	}
}

// killNow kills a worker whose dump was asked for and has not come.
func (m *Master) killNow(w *worker) {
	w.dumpAt = time.Time{}
	w.log.Warn("killing worker", "reason", w.killReason)
	if err := w.proc.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		w.log.Error("cannot kill worker", "error", err)
	}
}

// processStopped reports whether process pid is stopped (by SIGSTOP or a
// debugger), as /proc/PID/stat says; false when that cannot be read.
func processStopped(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')') // the command name may hold anything
	return i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't')
}
