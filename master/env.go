package master

import (
	"io"
	"os"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

// The master's seam to the operating system, as tableflip's env: the
// supervisor starts workers through a spawner and tells time through a
// clock, so its logic can be driven by a fake worker and a fake clock.

// process is a started worker process, as the supervisor sees it.
type process interface {
	// Pid identifies the process in logs and status.
	Pid() int
	// Signal sends sig to the process and to everything it started.
	Signal(sig syscall.Signal) error
	// Wait waits for the process to exit and says how it ended. What it
	// started ends with it.
	Wait() error
}

// spawned is what starting a worker gives the master.
type spawned struct {
	proc   process
	conn   *ipc.Conn     // the master's end of the worker's channel
	stderr io.ReadCloser // the worker's log lines (see ipc's package doc)
}

// spawner starts worker processes.
type spawner interface {
	spawn(spec spawnSpec) (spawned, error)
}

// clock tells the time and runs f after d on a goroutine of its own.
type clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) timer
}

// timer is a pending AfterFunc.
type timer interface {
	Stop() bool
}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) timer { return time.AfterFunc(d, f) }

// Signals the master handles; the rest keep their default action.
var handledSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT,
	syscall.SIGHUP, syscall.SIGTTIN, syscall.SIGTTOU, syscall.SIGUSR2,
	syscall.SIGUSR1, // reopen the workers' access logs
	// Without this a write to a closed stdout or stderr (a log reader
	// that went away) would kill the master, and with it the pool.
	syscall.SIGPIPE,
}
