package master

import (
	"fmt"
	"os"
	"strconv"
	"testing"

	"github.com/clusterd/clusterd/ipc"
)

// envHelper makes the test binary play a worker for the exec spawner's
// tests: it says online and ready, logs a JSON line and a plain one, and
// exits when told to drain.
const envHelper = "CLUSTERD_MASTER_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(envHelper) == "1" && os.Getenv(ipc.EnvWorkerID) != "" {
		os.Exit(helperWorker())
	}
	os.Exit(m.Run())
}

func helperWorker() int {
	fd, err := strconv.Atoi(os.Getenv(ipc.EnvFD))
	if err != nil {
		return 3
	}
	f := os.NewFile(uintptr(fd), "ipc")
	conn, err := ipc.NewConn(f)
	_ = f.Close()
	if err != nil {
		return 3
	}
	defer conn.Close()
	_ = conn.Send(ipc.Message{Type: ipc.Online, PID: os.Getpid()})
	_ = conn.Send(ipc.Message{Type: ipc.Ready})
	fmt.Fprintf(os.Stderr, `{"@level":"warn","@message":"helper says hello","gen":%q,"id":%q}`+"\n",
		os.Getenv(ipc.EnvGeneration), os.Getenv(ipc.EnvWorkerID))
	fmt.Fprintln(os.Stderr, "a plain line")
	for {
		msg, _, err := conn.Recv()
		if err != nil {
			return 1
		}
		if msg.Type == ipc.Drain {
			return 0
		}
	}
}
