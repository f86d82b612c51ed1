package master

import (
	"testing"
	"time"

	"github.com/clusterd/clusterd/ipc"
)

func TestTransitions(t *testing.T) {
	all := []State{Starting, Online, Ready, Draining, Exited, Failed}
	allowed := map[[2]State]bool{
		{Starting, Online}: true, {Starting, Draining}: true, {Starting, Exited}: true, {Starting, Failed}: true,
		{Online, Ready}: true, {Online, Draining}: true, {Online, Exited}: true, {Online, Failed}: true,
		{Ready, Draining}: true, {Ready, Exited}: true, {Ready, Failed}: true,
		{Draining, Exited}: true, {Draining, Failed}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := canMove(from, to); got != allowed[[2]State{from, to}] {
				t.Errorf("canMove(%v, %v) = %v", from, to, got)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		crashes int
		want    time.Duration
	}{
		{1, 0}, {2, 100 * time.Millisecond}, {3, 200 * time.Millisecond},
		{4, 400 * time.Millisecond}, {9, 12800 * time.Millisecond}, {10, backoffMax}, {100, backoffMax},
	}
	for _, tt := range tests {
		if got := backoff(tt.crashes); got != tt.want {
			t.Errorf("backoff(%d) = %v, want %v", tt.crashes, got, tt.want)
		}
	}
}

func TestSlotResetsAfterStablePeriod(t *testing.T) {
	s := &slot{id: 1}
	for i := 0; i < 5; i++ {
		s.crashed(time.Millisecond)
	}
	if d := s.crashed(time.Millisecond); d != 1600*time.Millisecond {
		t.Fatalf("sixth quick crash waits %v", d)
	}
	if d := s.crashed(stablePeriod); d != 0 || s.crashes != 1 {
		t.Errorf("crash after a stable run waits %v with count %d, want 0 and 1", d, s.crashes)
	}
}

func TestWorkerEnvDropsInheritedVariables(t *testing.T) {
	got := workerEnv([]string{"PATH=/bin", ipc.EnvWorkerID + "=3", ipc.EnvFD + "=3", ipc.EnvGeneration + "=1", "HOME=/root"})
	if len(got) != 2 || got[0] != "PATH=/bin" || got[1] != "HOME=/root" {
		t.Errorf("workerEnv = %v", got)
	}
}
