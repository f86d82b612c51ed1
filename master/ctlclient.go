package master

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"time"
)

// ErrNoMaster means no running master was found.
var ErrNoMaster = errors.New("no clusterd master is running")

// DefaultControlTimeout is how long Control waits for the master by default.
const DefaultControlTimeout = 5 * time.Second

// ErrNoAnswer means the master accepted no connection, or sent no answer,
// within the timeout.
var ErrNoAnswer = errors.New("the master did not answer")

// Control sends req to the master listening on path and returns its
// answer. A reload waits for the rolling restart to finish: the master
// says every second that it is still in progress, and timeout (default
// DefaultControlTimeout) bounds each wait for the master, not the roll.
func Control(path string, req Request, timeout time.Duration) (Response, error) {
	if timeout <= 0 {
		timeout = DefaultControlTimeout
	}
	if err := checkSocket(path); err != nil {
		return Response{}, err
	}
	c, err := net.DialTimeout("unix", path, timeout)
	if errors.Is(err, syscall.EACCES) {
		return Response{}, fmt.Errorf("%s: permission denied: run ctl as root or as the user the master admits", path)
	}
	if err != nil {
		return Response{}, fmt.Errorf("%w at %s (%v)", ErrNoMaster, path, unwrapOp(err))
	}
	defer c.Close()
	if err := checkServer(c.(*net.UnixConn)); err != nil {
		return Response{}, err
	}
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return Response{}, err
	}
	req.WaitMS = timeout.Milliseconds()
	// A master that refuses the connection answers and closes before
	// reading: its answer is worth more than the failed write.
	werr := json.NewEncoder(c).Encode(req)
	r := bufio.NewReader(c)
	for {
		if err := c.SetReadDeadline(time.Now().Add(timeout)); err != nil {
			return Response{}, err
		}
		line, err := r.ReadBytes('\n')
		if err != nil && werr != nil {
			return Response{}, noAnswer(werr, timeout)
		}
		if err != nil {
			return Response{}, noAnswer(err, timeout)
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			return Response{}, fmt.Errorf("bad answer from the master: %w", err)
		}
		if !resp.Pending {
			return resp, nil
		}
	}
}

func noAnswer(err error, timeout time.Duration) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w within %v", ErrNoAnswer, timeout)
	}
	return fmt.Errorf("%w: %v", ErrNoAnswer, unwrapOp(err))
}

func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err
	}
	return err
}
