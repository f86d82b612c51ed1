package master

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ErrNoMaster means no running master was found.
var ErrNoMaster = errors.New("no clusterd master is running")

// Control sends req to the master listening on path and returns its
// answer. A reload waits for the rolling restart to finish.
func Control(path string, req Request) (Response, error) {
	if err := checkSocket(path); err != nil {
		return Response{}, err
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return Response{}, fmt.Errorf("%w at %s (%v)", ErrNoMaster, path, unwrapOp(err))
	}
	defer c.Close()
	if err := checkServer(c.(*net.UnixConn)); err != nil {
		return Response{}, err
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return Response{}, err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return Response{}, fmt.Errorf("no answer from the master: %w", err)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return Response{}, fmt.Errorf("bad answer from the master: %w", err)
	}
	return resp, nil
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}

// FindControl returns the control socket of the one master running with
// the default control path. Stale sockets are skipped.
func FindControl() (string, error) {
	dir := ControlDir()
	if _, err := os.Stat(dir); err == nil {
		if err := checkSocketDir(dir); err != nil {
			return "", err
		}
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "master-*.sock"))
	var live []string
	for _, p := range paths {
		if c, err := net.DialTimeout("unix", p, time.Second); err == nil {
			_ = c.Close()
			live = append(live, p)
		} else if isStaleSocket(p) {
			_ = os.Remove(p)
		}
	}
	switch len(live) {
	case 0:
		return "", fmt.Errorf("%w (no control socket in %s; pass --control PATH)", ErrNoMaster, dir)
	case 1:
		return live[0], nil
	}
	return "", fmt.Errorf("%d masters are running (%s); pass --control PATH", len(live), strings.Join(live, ", "))
}
