package worker

import (
	"os"
	"strconv"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/internal/scoreboard"
	"github.com/clusterd/clusterd/ipc"
)

// openBoard maps the scoreboard the master passed (shared scheduling) and
// returns this worker's gate on it; nil without one. The mapping lasts as
// long as the process.
func openBoard(log hclog.Logger) *scoreboard.Gate {
	fdEnv, batonEnv, slotEnv := os.Getenv(ipc.EnvBoardFD), os.Getenv(ipc.EnvBoardBatonFD), os.Getenv(ipc.EnvBoardSlot)
	for _, k := range []string{ipc.EnvBoardFD, ipc.EnvBoardBatonFD, ipc.EnvBoardSlot} {
		_ = os.Unsetenv(k)
	}
	if fdEnv == "" {
		return nil
	}
	fd, err1 := strconv.Atoi(fdEnv)
	baton, err2 := strconv.Atoi(batonEnv)
	slot, err3 := strconv.Atoi(slotEnv)
	if err1 != nil || err2 != nil || err3 != nil || fd < 3 || baton < 3 || slot < 0 || slot >= scoreboard.Slots {
		log.Warn("bad scoreboard from master", "fd", fdEnv, "baton", batonEnv, "slot", slotEnv)
		return nil
	}
	unix.CloseOnExec(baton) // kept open: the event loops duplicate it
	f := os.NewFile(uintptr(fd), "scoreboard")
	b, err := scoreboard.Open(f)
	_ = f.Close()
	if err != nil {
		log.Warn("no scoreboard", "error", err)
		return nil
	}
	return scoreboard.NewGate(b, slot, baton)
}
