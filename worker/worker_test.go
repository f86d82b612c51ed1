package worker

import (
	"os"
	"testing"

	"github.com/clusterd/clusterd/ipc"
)

func TestIdentifyReadsAndRemovesEnvironment(t *testing.T) {
	t.Setenv(ipc.EnvWorkerID, "3")
	t.Setenv(ipc.EnvGeneration, "2")
	t.Setenv(ipc.EnvFD, "3")
	info, fd, err := identify()
	if err != nil {
		t.Fatal(err)
	}
	if info.ID != 3 || info.Generation != 2 || info.PID != os.Getpid() || fd != 3 {
		t.Errorf("identify = %+v, fd %d", info, fd)
	}
	for _, k := range []string{ipc.EnvWorkerID, ipc.EnvGeneration, ipc.EnvFD} {
		if _, ok := os.LookupEnv(k); ok {
			t.Errorf("%s still set: a worker's children would inherit it", k)
		}
	}
}

func TestIdentifyRejectsBadEnvironment(t *testing.T) {
	for _, env := range [][3]string{
		{"", "0", "3"},
		{"x", "0", "3"},
		{"0", "0", "3"},
		{"1", "0", "1"},
		{"1", "", "3"},
	} {
		t.Setenv(ipc.EnvWorkerID, env[0])
		t.Setenv(ipc.EnvGeneration, env[1])
		t.Setenv(ipc.EnvFD, env[2])
		if _, _, err := identify(); err == nil {
			t.Errorf("identify accepted %q", env)
		}
	}
}
