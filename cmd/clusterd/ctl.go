package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/clusterd/clusterd/master"
)

// ctl talks to a running master over its control socket.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("clusterd ctl", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	path := fs.String("control", "", "")
	asJSON := fs.Bool("json", false, "")
	timeout := fs.Duration("timeout", master.DefaultControlTimeout, "")
	req, err := parseCtl(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd ctl: %v (see clusterd --help)\n", err)
		return 2
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "clusterd ctl: --timeout must be positive, got %v (see clusterd --help)\n", *timeout)
		return 2
	}
	if *path == "" {
		if *path, err = master.FindControl(); err != nil {
			fmt.Fprintf(stderr, "clusterd ctl: %v\n", err)
			return 1
		}
	}
	resp, err := master.Control(*path, req, *timeout)
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd ctl %s: %v\n", req.Cmd, err)
		return 1
	}
	switch {
	case resp.Status != nil && *asJSON:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(resp.Status)
	case resp.Status != nil:
		printStatus(stdout, resp.Status)
	default:
		fmt.Fprintln(stdout, resp.Message)
	}
	return 0
}

// ctlCommands lists the commands for error messages.
const ctlCommands = master.CmdStatus + ", " + master.CmdReload + ", " + master.CmdScale + " N or " + master.CmdStop

// parseCtl accepts flags before or after the command.
func parseCtl(fs *flag.FlagSet, args []string) (master.Request, error) {
	var words []string
	for {
		if err := fs.Parse(args); err != nil {
			return master.Request{}, err
		}
		if fs.NArg() == 0 {
			break
		}
		words = append(words, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(words) == 0 {
		return master.Request{}, errors.New("missing command: " + ctlCommands)
	}
	req := master.Request{Cmd: words[0]}
	want := 1
	switch req.Cmd {
	case master.CmdStatus, master.CmdReload, master.CmdStop:
	case master.CmdScale:
		want = 2
		if len(words) < 2 {
			return req, errors.New("scale needs a worker count")
		}
		n, err := strconv.Atoi(words[1])
		if err != nil || n < 1 || n > master.MaxWorkers {
			return req, fmt.Errorf("scale: %q is not a worker count from 1 to %d", words[1], master.MaxWorkers)
		}
		req.N = n
	default:
		return req, fmt.Errorf("unknown command %q: want %s", req.Cmd, ctlCommands)
	}
	if len(words) > want {
		return req, fmt.Errorf("unexpected argument %q", words[want])
	}
	return req, nil
}

func printStatus(w io.Writer, st *master.Status) {
	m := st.Master
	state := "running"
	switch {
	case m.Stopping:
		state = "stopping"
	case m.Rolling:
		state = "rolling restart"
	}
	fmt.Fprintf(w, "master pid %d, %s, generation %d, %d workers (%s), up %v, listening on %v\n",
		m.PID, state, m.Generation, m.Workers, m.Sched, secs(m.Uptime), m.Listeners)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPID\tGEN\tSTATE\tREQUESTS\tCONNS\tRESTARTS\tUPTIME")
	for _, x := range st.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%d\t%d\t%d\t%v\n",
			x.ID, x.PID, x.Generation, x.State, x.Requests, x.Connections, x.Restarts, secs(x.Uptime))
	}
	_ = tw.Flush()
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) }
