package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/master"
)

const envCrashGen = "CLUSTERD_TEST_CRASH_FROM_GEN" // workers of this generation on fail at start-up

func ctlPath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "ctl.sock")
}

func ctlRun(t *testing.T, path string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"ctl", "--control", path}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func status(t *testing.T, path string) master.Status {
	t.Helper()
	code, out, errOut := ctlRun(t, path, "status", "--json")
	if code != 0 {
		t.Fatalf("ctl status: %d %s", code, errOut)
	}
	var st master.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return st
}

// servingPids returns the pids of the ready workers, by id.
func servingPids(t *testing.T, path string) map[int]int {
	out := map[int]int{}
	for _, w := range status(t, path).Workers {
		if w.State == "ready" {
			out[w.ID] = w.PID
		}
	}
	return out
}

func waitRolled(c *cluster, gen int) {
	c.waitLog(30*time.Second, func(l map[string]any) bool {
		return (l["@message"] == "rolling restart done" || l["@message"] == "rolling restart failed") &&
			l["generation"] == float64(gen)
	})
}

// TestRollingRestartsDropNothing: under keep-alive load, two rolling
// restarts (SIGHUP, then ctl reload) replace every worker and no request
// fails.
func TestRollingRestartsDropNothing(t *testing.T) {
	for _, tc := range []struct {
		sched     string
		conns     int
		closeEach bool
	}{
		{"shared", 64, false}, {"shared", 256, false}, {"shared", 64, true},
		{"rr", 64, false}, {"rr", 256, false}, {"rr", 64, true},
		{"reuseport", 64, false}, {"reuseport", 256, false}, {"reuseport", 64, true},
	} {
		name := fmt.Sprintf("%s/c%d", tc.sched, tc.conns)
		if tc.closeEach {
			name += "/close"
		}
		t.Run(name, func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 2, nil, "--workers", "2", "--control", path, "--sched", tc.sched)
			gen0 := servingPids(t, path)
			l := startLoadMode(c.addr, "/", tc.conns, 60*time.Second, tc.closeEach)
			time.Sleep(300 * time.Millisecond)

			c.signal(syscall.SIGHUP)
			waitRolled(c, 1)
			gen1 := servingPids(t, path)
			time.Sleep(300 * time.Millisecond)

			code, out, errOut := ctlRun(t, path, "reload")
			if code != 0 {
				t.Errorf("ctl reload: exit %d: %s", code, errOut)
			}
			gen2 := servingPids(t, path)
			time.Sleep(300 * time.Millisecond)
			l.stopAndWait()

			t.Logf("load: %v; reload said %q", l, strings.TrimSpace(out))
			if l.errs.Load() != 0 || l.non2xx.Load() != 0 || l.ok.Load() < 500 {
				t.Errorf("load during the rolls: %v; want no errors, no non-2xx", l)
			}
			for _, pair := range [][2]map[int]int{{gen0, gen1}, {gen1, gen2}} {
				if len(pair[1]) != 2 {
					t.Errorf("serving workers after a roll: %v", pair[1])
				}
				for id, pid := range pair[0] {
					if pair[1][id] == pid {
						t.Errorf("worker %d kept pid %d across a roll (%v → %v)", id, pid, pair[0], pair[1])
					}
				}
			}
		})
	}
}

// TestDrainFinishesInflight: a request in flight on a worker being rolled
// away completes with 200.
func TestDrainFinishesInflight(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 1, nil, "--workers", "1", "--control", path)
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, _, err := c.get(newConnClient(), "/delay?ms=2000")
		done <- result{code, err}
	}()
	time.Sleep(300 * time.Millisecond)
	if code, _, errOut := ctlRun(t, path, "reload"); code != 0 {
		t.Fatalf("reload: %s", errOut)
	}
	if r := <-done; r.err != nil || r.code != 200 {
		t.Fatalf("in-flight request on the draining worker: %d %v", r.code, r.err)
	}
}

// TestFailedRollKeepsOldWorkers: a roll whose replacements cannot start
// leaves the old workers serving and ctl reload exits non-zero saying why.
func TestFailedRollKeepsOldWorkers(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 2, []string{envCrashGen + "=1"}, "--workers", "2", "--control", path)
	before := servingPids(t, path)
	code, _, errOut := ctlRun(t, path, "reload")
	if code == 0 || !strings.Contains(errOut, "exited during start-up (exit status 3)") {
		t.Errorf("ctl reload: exit %d, %q; want non-zero with the reason", code, errOut)
	}
	after := servingPids(t, path)
	if len(after) != 2 || after[1] != before[1] || after[2] != before[2] {
		t.Errorf("workers changed: %v → %v", before, after)
	}
	if code, body, err := c.get(newConnClient(), "/"); err != nil || code != 200 || body != "Hello World\n" {
		t.Errorf("after the failed roll: %d %q %v", code, body, err)
	}
}

// TestScaleUnderLoad: scale 4 then 1 under load, with no error, in every
// scheduling mode.
func TestScaleUnderLoad(t *testing.T) {
	for _, sched := range master.SchedModes {
		t.Run(sched, func(t *testing.T) { testScaleUnderLoad(t, sched) })
	}
}

func testScaleUnderLoad(t *testing.T, sched string) {
	path := ctlPath(t)
	c := startCluster(t, 2, nil, "--workers", "2", "--control", path, "--sched", sched)
	l := startLoadMode(c.addr, "/", 32, 30*time.Second, sched == master.SchedReuseport)
	if code, _, errOut := ctlRun(t, path, "scale", "4"); code != 0 {
		t.Fatalf("scale 4: %s", errOut)
	}
	waitFor(t, 10*time.Second, func() bool { return len(servingPids(t, path)) == 4 })
	st := status(t, path)
	if st.Master.Workers != 4 {
		t.Errorf("status after scale 4: %+v", st.Master)
	}
	if code, _, errOut := ctlRun(t, path, "scale", "1"); code != 0 {
		t.Fatalf("scale 1: %s", errOut)
	}
	waitFor(t, 10*time.Second, func() bool { return len(status(t, path).Workers) == 1 })
	time.Sleep(200 * time.Millisecond)
	l.stopAndWait()
	if st := status(t, path); st.Master.Workers != 1 || len(st.Workers) != 1 || st.Workers[0].State != "ready" {
		t.Errorf("status after scale 1: %+v", st)
	}
	if l.errs.Load() != 0 || l.non2xx.Load() != 0 {
		t.Errorf("load while scaling: %v", l)
	}
	if code, _, _ := ctlRun(t, path, "scale", "0"); code == 0 {
		t.Error("scale 0 was accepted")
	}
}

// TestSignalsScale: SIGTTIN adds a worker, SIGTTOU removes one, never below 1.
func TestSignalsScale(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 1, nil, "--workers", "1", "--control", path)
	c.signal(syscall.SIGTTIN)
	waitFor(t, 10*time.Second, func() bool { return len(servingPids(t, path)) == 2 })
	c.signal(syscall.SIGTTOU)
	waitFor(t, 10*time.Second, func() bool { return len(status(t, path).Workers) == 1 })
	c.signal(syscall.SIGTTOU)
	time.Sleep(300 * time.Millisecond)
	if st := status(t, path); st.Master.Workers != 1 || len(st.Workers) != 1 {
		t.Errorf("after SIGTTOU at 1 worker: %+v", st)
	}
}

// TestHungWorkerIsReplaced: a worker that stops (SIGSTOP: its loop turns no
// more) is killed and replaced within --worker-timeout + 1s.
func TestHungWorkerIsReplaced(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 2, nil, "--workers", "2", "--control", path, "--worker-timeout", "1s")
	before := servingPids(t, path)
	stopped := time.Now()
	if err := syscall.Kill(before[1], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	c.waitLog(3*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker ready" && l["id"] == float64(1) && int(l["pid"].(float64)) != before[1]
	})
	if el := time.Since(stopped); el > 2*time.Second {
		t.Errorf("replaced after %v, want within worker-timeout + 1s", el)
	}
	c.waitLog(time.Second, func(l map[string]any) bool {
		return (l["@message"] == "killing worker" || l["@message"] == hungMessage) && strings.HasPrefix(l["reason"].(string), "event loop silent")
	})
}

// TestBlockedLoopIsReplaced: a worker whose event loop is blocked by a
// handler (the process itself runs on and heartbeats) is killed and
// replaced within --worker-timeout + 1s.
func TestBlockedLoopIsReplaced(t *testing.T) {
	path := ctlPath(t)
	c := startCluster(t, 2, []string{envHang + "=1"}, "--workers", "2", "--control", path, "--worker-timeout", "1s")
	before := servingPids(t, path)
	client := newConnClient()
	client.Timeout = 200 * time.Millisecond
	blocked := time.Now()
	_, _, err := c.get(client, "/hang")
	if err == nil {
		t.Fatal("GET /hang answered")
	}
	l := c.waitLog(3*time.Second, func(l map[string]any) bool {
		return (l["@message"] == "killing worker" || l["@message"] == hungMessage) && strings.HasPrefix(l["reason"].(string), "event loop silent")
	})
	victim := int(l["pid"].(float64))
	c.waitLog(2*time.Second, func(l map[string]any) bool {
		return l["@message"] == "worker ready" && int(l["pid"].(float64)) != before[1] && int(l["pid"].(float64)) != before[2]
	})
	el := time.Since(blocked)
	t.Logf("blocked worker replaced %v after its loop blocked (--worker-timeout 1s)", el.Round(time.Millisecond))
	if el > 2*time.Second {
		t.Errorf("blocked worker replaced after %v, want within worker-timeout + 1s", el)
	}
	if victim != before[1] && victim != before[2] {
		t.Errorf("killed pid %d is not one of the workers %v", victim, before)
	}
}

func TestCtlErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	code, _, errOut := ctlRun(t, missing, "status")
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "no clusterd master is running") {
		t.Errorf("ctl with no master: exit %d, %q", code, errOut)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"scale"}, {"scale", "x"}, {"status", "extra"}} {
		if code, _, errOut := ctlRun(t, missing, args...); code != 2 || errOut == "" {
			t.Errorf("ctl %v: exit %d, %q; want usage error", args, code, errOut)
		}
	}
}

// TestCtlFindsDefaultMaster: a master started without --control is found by
// ctl without flags; its socket is mode 0600.
func TestCtlFindsDefaultMaster(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	c := startCluster(t, 1, nil, "--workers", "1")
	var out, errOut bytes.Buffer
	if code := run([]string{"ctl", "status"}, &out, &errOut); code != 0 {
		t.Fatalf("ctl status: %d %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "ready") {
		t.Errorf("status table: %s", out.String())
	}
	matches, _ := filepath.Glob(filepath.Join(master.ControlDir(), "*.sock"))
	if len(matches) != 1 {
		t.Fatalf("control sockets: %v", matches)
	}
	if fi, err := os.Stat(matches[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode: %v %v", fi.Mode(), err)
	}
	c.signal(syscall.SIGTERM)
	c.wait(5 * time.Second)
	if code := run([]string{"ctl", "status"}, &out, &errOut); code == 0 {
		t.Error("ctl status succeeded with no master running")
	}
}

func waitFor(t *testing.T, d time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
