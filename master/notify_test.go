package master

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/ipc"
)

// sentStates records what a notifier sends, STATUS= and WATCHDOG=1 apart.
type sentStates struct {
	states, statuses []string
	pings            int
	fail             bool
}

func (s *sentStates) send(state string) error {
	switch {
	case strings.HasPrefix(state, "STATUS="):
		s.statuses = append(s.statuses, strings.TrimPrefix(state, "STATUS="))
	case state == "WATCHDOG=1":
		s.pings++
	default:
		s.states = append(s.states, strings.SplitN(state, "\n", 2)[0])
	}
	if s.fail {
		return errors.New("connection refused")
	}
	return nil
}

func TestNotifierSequence(t *testing.T) {
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		name  string
		views []poolView
		want  []string
	}{
		{"start: ready only when every slot is", []poolView{
			{total: 2}, {ready: 1, total: 2}, {ready: 2, total: 2}, {ready: 2, total: 2},
		}, []string{"READY=1"}},
		{"zero slots are never ready", []poolView{{total: 0}}, nil},
		{"reload, then stop", []poolView{
			{ready: 2, total: 2},
			{ready: 2, total: 2, generation: 1, rolling: true},
			{ready: 1, total: 2, generation: 1, rolling: true},
			{ready: 2, total: 2, generation: 1},
			{ready: 2, total: 2, generation: 1, stopping: true},
			{total: 2, generation: 1, stopping: true},
		}, []string{"READY=1", "RELOADING=1", "READY=1", "STOPPING=1"}},
		{"a roll that failed before the next view still reloads", []poolView{
			{ready: 2, total: 2}, {ready: 2, total: 2, generation: 1},
		}, []string{"READY=1", "RELOADING=1", "READY=1"}},
		{"two rolls in a row", []poolView{
			{ready: 1, total: 1},
			{ready: 1, total: 1, generation: 1, rolling: true}, {ready: 1, total: 1, generation: 1},
			{ready: 1, total: 1, generation: 2, rolling: true}, {ready: 1, total: 1, generation: 2},
		}, []string{"READY=1", "RELOADING=1", "READY=1", "RELOADING=1", "READY=1"}},
		{"a reload during start-up ends in one READY", []poolView{
			{total: 2}, {total: 2, generation: 1, rolling: true}, {ready: 2, total: 2, generation: 1},
		}, []string{"READY=1"}},
		{"stop during a reload", []poolView{
			{ready: 1, total: 1}, {ready: 1, total: 1, generation: 1, rolling: true},
			{ready: 1, total: 1, generation: 1, stopping: true},
		}, []string{"READY=1", "RELOADING=1", "STOPPING=1"}},
		{"stop before ready", []poolView{{total: 3}, {total: 3, stopping: true}}, []string{"STOPPING=1"}},
		{"a crash after start changes only the status", []poolView{
			{ready: 2, total: 2}, {ready: 1, total: 2}, {ready: 2, total: 2},
		}, []string{"READY=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got sentStates
			n := &notifier{send: got.send, log: hclog.NewNullLogger()}
			for i, v := range tc.views {
				n.update(v, t0.Add(time.Duration(i)*time.Second))
			}
			if strings.Join(got.states, " ") != strings.Join(tc.want, " ") {
				t.Errorf("sent %q, want %q", got.states, tc.want)
			}
			if got.pings != 0 {
				t.Errorf("%d watchdog pings with no watchdog", got.pings)
			}
		})
	}
}

func TestNotifierStatus(t *testing.T) {
	var got sentStates
	n := &notifier{send: got.send, log: hclog.NewNullLogger()}
	for _, v := range []poolView{
		{total: 4, live: 4}, {total: 4, live: 4}, {ready: 4, total: 4, live: 4},
		{ready: 4, total: 4, live: 5, generation: 1, rolling: true},
		{ready: 3, total: 4, live: 3, generation: 1, stopping: true},
	} {
		n.update(v, time.Time{})
	}
	want := []string{
		"0/4 workers ready, generation 0",
		"4/4 workers ready, generation 0",
		"reloading to generation 1: 4/4 workers ready",
		"stopping: 3 workers left",
	}
	if strings.Join(got.statuses, "|") != strings.Join(want, "|") {
		t.Errorf("statuses %q, want %q", got.statuses, want)
	}
	for _, s := range got.statuses {
		if strings.ContainsAny(s, "\n") {
			t.Errorf("status %q is not one line", s)
		}
	}
}

func TestNotifierWatchdog(t *testing.T) {
	var got sentStates
	n := &notifier{send: got.send, log: hclog.NewNullLogger(), interval: time.Second}
	t0 := time.Unix(1000, 0)
	v := poolView{ready: 1, total: 1}
	// Updates every 100ms for 10s: one ping per interval, the first at once.
	for i := 0; i <= 100; i++ {
		n.update(v, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	if got.pings != 11 {
		t.Errorf("%d pings in 10s at a 1s interval, want 11", got.pings)
	}
	// No update (a stuck loop): no ping, however long.
	got.pings = 0
	n.update(v, t0.Add(time.Hour))
	if got.pings != 1 {
		t.Errorf("%d pings after a long silence, want 1", got.pings)
	}
}

func TestNotifierKeepsGoingAfterSendFailure(t *testing.T) {
	got := sentStates{fail: true}
	n := &notifier{send: got.send, log: hclog.NewNullLogger()}
	n.update(poolView{ready: 1, total: 1}, time.Time{})
	got.fail = false
	n.update(poolView{ready: 1, total: 1, generation: 1}, time.Time{})
	if want := "READY=1 RELOADING=1 READY=1"; strings.Join(got.states, " ") != want {
		t.Errorf("sent %q, want %q", got.states, want)
	}
}

func TestWorkerEnvDropsServiceManagerVariables(t *testing.T) {
	env := workerEnv([]string{"PATH=/bin", "NOTIFY_SOCKET=/run/systemd/notify", "WATCHDOG_USEC=1000000",
		"WATCHDOG_PID=1", ipc.EnvWorkerID + "=3", "HOME=/"})
	if got := strings.Join(env, " "); got != "PATH=/bin HOME=/" {
		t.Errorf("worker env %q", got)
	}
}
