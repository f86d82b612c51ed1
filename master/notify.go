package master

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// Service-manager variables: the master reads them, and no worker inherits
// them, so only the master speaks for the service.
var serviceManagerEnv = []string{"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="}

// poolView is what the service manager is told about the pool.
type poolView struct {
	ready, total int // slots whose worker serves; slots
	live         int // worker processes, draining ones included
	generation   int
	rolling      bool
	stopping     bool
}

func (m *Master) poolView() poolView {
	v := poolView{total: len(m.slots), live: len(m.workers), generation: m.generation,
		rolling: m.roll != nil || len(m.answers) > 0, stopping: m.stopping}
	for _, s := range m.slots {
		if s.worker != nil && s.worker.state == Ready {
			v.ready++
		}
	}
	return v
}

// notifyServiceManager tells systemd (sd_notify) what changed since the
// last call and pings its watchdog when due. The supervisor calls it after
// every event and tick, so pings stop when its loop stops turning.
func (m *Master) notifyServiceManager() {
	if m.sd != nil {
		m.sd.update(m.poolView(), m.now())
	}
}

// notifier speaks the sd_notify protocol for the master. It derives each
// message from the difference between successive pool views:
//
//	start:  READY=1 once every slot has a ready worker
//	reload: RELOADING=1 with MONOTONIC_USEC when a roll begins (or a new
//	        generation appears), READY=1 when it has ended, either way
//	stop:   STOPPING=1
//
// STATUS= follows the pool, and WATCHDOG=1 is sent every half watchdog
// interval.
type notifier struct {
	send     func(state string) error
	log      hclog.Logger
	interval time.Duration // between watchdog pings; 0: no watchdog

	last       poolView // as of the last update
	started    bool     // READY=1 was sent once
	reloading  bool     // RELOADING=1 was sent, READY=1 not yet
	stopping   bool
	generation int
	status     string
	lastPing   time.Time
	failing    bool // the last send failed (logged once per run of failures)
}

// newNotifier returns a notifier when a service manager listens on
// $NOTIFY_SOCKET, or nil.
func newNotifier(log hclog.Logger) *notifier {
	if os.Getenv("NOTIFY_SOCKET") == "" {
		return nil
	}
	n := &notifier{log: log, send: func(state string) error {
		_, err := daemon.SdNotify(false, state)
		return err
	}}
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("ignoring the service manager's watchdog setting", "error", err)
	}
	if wd > 0 {
		n.interval = wd / 2
		log.Info("watchdog enabled", "timeout", wd, "ping_every", n.interval)
	}
	return n
}

// update sends what changed between the last view and v.
func (n *notifier) update(v poolView, now time.Time) {
	if n.interval > 0 && now.Sub(n.lastPing) >= n.interval {
		n.lastPing = now
		n.notify(daemon.SdNotifyWatchdog)
	}
	if v == n.last {
		return // most events (a heartbeat, a connection in rr mode) change nothing
	}
	n.last = v
	switch {
	case n.stopping:
	case v.stopping:
		n.stopping = true
		n.notify(daemon.SdNotifyStopping)
	case !n.started:
		if !v.rolling && v.total > 0 && v.ready == v.total {
			n.started, n.generation = true, v.generation
			n.notify(daemon.SdNotifyReady)
		}
	default:
		if v.generation != n.generation && !n.reloading {
			n.reloading = true
			n.notify(daemon.SdNotifyReloading + "\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
		}
		n.generation = v.generation
		if n.reloading && !v.rolling {
			n.reloading = false
			n.notify(daemon.SdNotifyReady)
		}
	}
	if s := v.status(); s != n.status {
		n.status = s
		n.notify("STATUS=" + s)
	}
}

// status is the one-line STATUS= text.
func (v poolView) status() string {
	switch {
	case v.stopping:
		if v.live == 1 {
			return "stopping: 1 worker left"
		}
		return fmt.Sprintf("stopping: %d workers left", v.live)
	case v.rolling:
		return fmt.Sprintf("reloading to generation %d: %d/%d workers ready", v.generation, v.ready, v.total)
	}
	return fmt.Sprintf("%d/%d workers ready, generation %d", v.ready, v.total, v.generation)
}

func (n *notifier) notify(state string) {
	err := n.send(state)
	switch {
	case err != nil && !n.failing:
		n.log.Warn("cannot notify the service manager", "error", err)
	case err == nil && n.failing:
		n.log.Info("notifying the service manager again")
	}
	n.failing = err != nil
}

// monotonicUsec is CLOCK_MONOTONIC in microseconds, the clock systemd
// compares a reload's MONOTONIC_USEC with.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1e3
}
