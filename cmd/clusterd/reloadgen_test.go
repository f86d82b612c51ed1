package main

import (
	"encoding/json"
	"testing"
	"time"
)

// TestReloadAnswersAfterOldWorkersStopAccepting: once ctl reload has
// answered, every new connection reaches the new generation, in every
// scheduling mode, though the old workers are still finishing requests of
// the load (they drain, they have not exited).
func TestReloadAnswersAfterOldWorkersStopAccepting(t *testing.T) {
	for _, mode := range []string{"shared", "rr", "reuseport"} {
		t.Run(mode, func(t *testing.T) {
			path := ctlPath(t)
			c := startCluster(t, 2, nil, "--workers", "2", "--sched", mode, "--control", path)
			l := startLoad(c.addr, "/", 32, 20*time.Second)
			time.Sleep(200 * time.Millisecond)
			client := newConnClient()
			for round := 1; round <= 3; round++ {
				if code, _, errOut := ctlRun(t, path, "reload"); code != 0 {
					l.stopAndWait()
					t.Fatalf("reload %d: %d %s", round, code, errOut)
				}
				for i := range 20 {
					code, body, err := c.get(client, "/worker")
					var w struct{ Generation int }
					if err == nil {
						err = json.Unmarshal([]byte(body), &w)
					}
					if err != nil || code != 200 || w.Generation != round {
						t.Errorf("reload %d, new connection %d: %d %s %v; want generation %d", round, i, code, body, err, round)
					}
				}
			}
			l.stopAndWait()
			if l.errs.Load() != 0 || l.non2xx.Load() != 0 || l.ok.Load() == 0 {
				t.Errorf("load over the reloads: %v", l)
			}
		})
	}
}
