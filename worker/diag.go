package worker

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// maxDump bounds a goroutine dump.
const maxDump = 16 << 20

// dumpOnQuit answers SIGQUIT, which the master sends to a worker whose
// event loop is stuck before it kills it, as the Go runtime would: the
// stacks of all goroutines on stderr (which the master logs), then exit
// status 2. Unlike the runtime's own dump, it stops the world first, so
// a goroutine spinning on another thread shows where it spins. It returns
// a function that stops listening.
func dumpOnQuit(id int) (stop func()) {
	quit := make(chan os.Signal, 1)
	signal.Notify(quit, syscall.SIGQUIT)
	done := make(chan struct{})
	go func() {
		select {
		case <-quit:
			fmt.Fprintf(os.Stderr, "SIGQUIT: goroutine dump of worker %d (pid %d)\n%s", id, os.Getpid(), stacks())
			os.Exit(2)
		case <-done:
		}
	}()
	return func() { signal.Stop(quit); close(done) }
}

// stacks returns the stacks of all goroutines.
func stacks() []byte {
	buf := make([]byte, 64<<10)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) || len(buf) >= maxDump {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
