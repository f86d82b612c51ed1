package nethttp

import (
	"context"
	"sync"
	"time"
)

// reqContext is the context of an adapted request: cancelled when the
// client goes away, the server closes the connection, or ServeHTTP
// returns. Unlike context.WithCancel it allocates nothing of its own (it
// lives in the job) and makes its Done channel only when asked for it.
// It implements AfterFunc, so contexts derived from it (WithTimeout, …)
// need no goroutine to follow it.
type reqContext struct {
	mu     sync.Mutex
	done   chan struct{} // made by the first Done; closed once cancelled
	err    error
	afters map[*afterFunc]struct{}
}

type afterFunc struct{ f func() }

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (c *reqContext) Deadline() (time.Time, bool) { return time.Time{}, false }

func (c *reqContext) Value(any) any { return nil }

func (c *reqContext) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		if c.err != nil {
			return closedChan
		}
		c.done = make(chan struct{})
	}
	return c.done
}

func (c *reqContext) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// cancel cancels the context; later calls do nothing. It never blocks:
// AfterFunc functions run on goroutines of their own.
func (c *reqContext) cancel() {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = context.Canceled
	if c.done != nil {
		close(c.done)
	}
	afters := c.afters
	c.afters = nil
	c.mu.Unlock()
	for a := range afters {
		go a.f()
	}
}

// AfterFunc arranges for f to run on its own goroutine once the context
// is cancelled, as context.AfterFunc does; stop undoes it if f has not
// started.
func (c *reqContext) AfterFunc(f func()) (stop func() bool) {
	a := &afterFunc{f: f}
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		go f()
		return func() bool { return false }
	}
	if c.afters == nil {
		c.afters = make(map[*afterFunc]struct{})
	}
	c.afters[a] = struct{}{}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.afters[a]
		delete(c.afters, a)
		return ok
	}
}

func (c *reqContext) String() string { return "nethttp.requestContext" }

var _ context.Context = (*reqContext)(nil)
