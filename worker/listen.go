package worker

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/clusterd/clusterd/ipc"
)

// listenFromMaster returns the listeners the master says to serve, and
// removes its variable; def when it says nothing (an older master).
func listenFromMaster(def []string) ([]string, error) {
	v, ok := os.LookupEnv(ipc.EnvListen)
	_ = os.Unsetenv(ipc.EnvListen)
	if !ok {
		return def, nil
	}
	var keys []string
	if err := json.Unmarshal([]byte(v), &keys); err != nil || len(keys) == 0 {
		return nil, fmt.Errorf("worker: bad %s from master: %q", ipc.EnvListen, v)
	}
	return keys, nil
}
