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

// ctlConfig is what ctl's flags say.
type ctlConfig struct {
	control  string
	json     bool
	timeout  time.Duration
	interval time.Duration // top
	count    int           // top
}

// ctlFlags is ctl's flag table (see serveFlags).
var ctlFlags = []flagRow[ctlConfig]{
	{name: "control", arg: "PATH", help: "the master's control socket; without it, ctl finds\nthe one master started without --control",
		bind: stringFlag(func(c *ctlConfig) *string { return &c.control }, "")},
	{name: "json", show: "off", help: `status as JSON: {"master":{...},"workers":[{"id",
"pid","generation","state","requests","connections",
"restarts",...}]}`,
		bind: boolFlag(func(c *ctlConfig) *bool { return &c.json }, false)},
	{name: "timeout", arg: "D", help: "give up with exit 1 when the master does not answer\nwithin this; a reload may take longer while the\nmaster reports progress",
		bind: durationFlag(func(c *ctlConfig) *time.Duration { return &c.timeout }, master.DefaultControlTimeout)},
	{name: "interval", arg: "D", help: "top: time between two frames",
		bind: durationFlag(func(c *ctlConfig) *time.Duration { return &c.interval }, time.Second)},
	{name: "count", arg: "N", show: "until interrupted", help: "top: frames to show",
		bind: intFlag(func(c *ctlConfig) *int { return &c.count }, 0)},
}

// ctl talks to a running master over its control socket.
func ctl(args []string, stdout, stderr io.Writer) int {
	var cfg ctlConfig
	fs := newFlags("clusterd ctl", ctlFlags, &cfg)
	req, err := parseCtl(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err == nil {
		err = positiveDurations(fs)
	}
	if err == nil && cfg.count < 0 {
		err = fmt.Errorf("--count must not be negative, got %d", cfg.count)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd ctl: %v (see clusterd --help)\n", err)
		return 2
	}
	path := cfg.control
	if path == "" {
		if path, err = master.FindControl(); err != nil {
			fmt.Fprintf(stderr, "clusterd ctl: %v\n", err)
			return 1
		}
	}
	if req.Cmd == cmdTop {
		return top(path, cfg.timeout, cfg.interval, cfg.count, stdout, stderr)
	}
	resp, err := master.Control(path, req, cfg.timeout)
	if err == nil && !resp.OK {
		err = errors.New(resp.Error)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd ctl %s: %v\n", req.Cmd, err)
		return 1
	}
	switch {
	case resp.Status != nil && cfg.json:
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(resp.Status)
	case resp.Status != nil:
		err = printStatus(stdout, resp.Status)
	default:
		_, err = fmt.Fprintln(stdout, resp.Message)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd ctl %s: %v\n", req.Cmd, err)
		return 1
	}
	return 0
}

// ctlCommands lists the commands for error messages.
const ctlCommands = master.CmdStatus + ", " + cmdTop + ", " + master.CmdReload + ", " + master.CmdUpgrade + ", " + master.CmdScale + " N or " + master.CmdStop

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
	case master.CmdStatus, master.CmdReload, master.CmdUpgrade, master.CmdStop, cmdTop:
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

func printStatus(w io.Writer, st *master.Status) error {
	m := st.Master
	state := "running"
	switch {
	case m.Stopping:
		state = "stopping"
	case m.Rolling:
		state = "rolling restart"
	case m.Upgrading:
		state = "upgrading"
	}
	if _, err := fmt.Fprintf(w, "master pid %d, %s, generation %d, %d workers (%s), up %v\n",
		m.PID, state, m.Generation, m.Workers, m.Sched, secs(m.Uptime)); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	printListeners(tw, m.Listeners)
	fmt.Fprintln(tw, "ID\tPID\tGEN\tSTATE\tREQUESTS\tCONNS\tRESTARTS\tUPTIME")
	for _, x := range st.Workers {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%d\t%d\t%d\t%v\n",
			x.ID, x.PID, x.Generation, x.State, x.Requests, x.Connections, x.Restarts, secs(x.Uptime))
	}
	return tw.Flush()
}

// printListeners prints one line per listener: what was asked for, how it
// was obtained, what it listens on and its accept queue length.
func printListeners(tw *tabwriter.Writer, ls []master.ListenerStatus) {
	fmt.Fprintln(tw, "LISTEN\tFORM\tADDRESS\tBACKLOG")
	for _, l := range ls {
		backlog := strconv.Itoa(l.Backlog)
		if l.Backlog == 0 {
			backlog = "inherited"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", l.Listen, l.Form, l.Addr, backlog)
	}
	_ = tw.Flush() // aligns this table on its own; an error shows again at the last Flush
	fmt.Fprintln(tw)
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)).Round(time.Second) }
