// Package defaults holds the defaults the master, the workers and the
// clusterd command share, so each is written once. The HTTP limits are
// httpcore's own (httpcore.DefaultIdleTimeout, …); the listen address is
// clusterd.DefaultListen; the scheduling mode is master.SchedShared.
package defaults

import "time"

const (
	// GracefulTimeout bounds a worker's drain; the master kills a worker
	// still draining after it.
	GracefulTimeout = 30 * time.Second
	// ReadyTimeout bounds a new worker's start-up.
	ReadyTimeout = 10 * time.Second
	// WorkerTimeout: a ready worker whose event loop is silent this long is
	// killed and replaced.
	WorkerTimeout = 30 * time.Second
	// LogLevel is the hclog level of the master and the workers.
	LogLevel = "info"
	// LogFormat is how the master logs: text or json.
	LogFormat = "text"
)
