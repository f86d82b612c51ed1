package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd"
	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/defaults"
	"github.com/clusterd/clusterd/master"
)

// usage is what clusterd --help prints: usageHead, the flags from
// serveFlags, usageTail.
var usage = usageHead + flagUsage(serveFlags) + usageTail

const usageHead = `clusterd - a multi-process HTTP/1.1 (and h2c) server

A master process binds the listening sockets and starts N worker processes;
each worker receives the sockets over a Unix socket and serves HTTP from its
own epoll event loop. The master restarts workers that crash and drains them
on shutdown. Without --root, workers serve the built-in demo app:

  GET /              200 "Hello World"
  ANY /echo          200 JSON {"method","url","headers","body"} of the request;
                     a body over 16KiB is streamed back as the client reads
  GET /worker        200 JSON {"id","pid","generation","requests"} of the worker
  GET /delay?ms=N    200 after N milliseconds (0..60000), without blocking the loop;
                     any other N is 400

Usage:
  clusterd [serve] [flags]        run a master and its workers (the default)
  clusterd ctl [--control PATH] [--json] [--timeout D] COMMAND
                                  control a running master; ctl gives up with
                                  exit 1 when the master does not answer within
                                  --timeout (default 5s; a reload may take longer
                                  while the master reports progress):
      status                      the master and a table of its workers
                                  (--json: {"master":{...},"workers":[{"id","pid",
                                  "generation","state","requests","connections",
                                  "restarts",...}]})
      reload                      rolling restart: one worker at a time, start a
                                  replacement, wait until it serves, drain the old
                                  one. Exits non-zero if a replacement fails; the
                                  remaining old workers keep serving. A reload
                                  asked for while one runs is refused.
      scale N                     grow or shrink the pool to N workers (1..1024)
      stop                        graceful stop
                                  With no --control, ctl finds the one master
                                  started without --control. ctl refuses a
                                  socket, or a directory holding it, that another
                                  user owns or may write.
  clusterd version                print the version
  clusterd help                   print this help

Flags (-flag and --flag are the same; durations like 500ms, 5s, 1m;
sizes in bytes or with a K, KiB, M or MiB suffix):
`

const usageTail = `
Signals to the master:
  SIGTERM, SIGINT   graceful stop: workers finish in-flight requests, then exit 0;
                    a second signal stops at once
  SIGQUIT           immediate stop
  SIGHUP            rolling restart, as clusterd ctl reload
  SIGTTIN, SIGTTOU  one worker more, one fewer (never below 1)

A worker that exits unexpectedly is replaced at once; one that keeps
crashing is restarted after growing delays (100ms doubling up to 15s). A
worker whose event loop stops turning is killed after --worker-timeout and
replaced. A draining worker stops accepting at once, finishes its in-flight
requests, answers the next request on each keep-alive connection with
"Connection: close", and closes connections that stay idle for a
second. When the master
dies, its workers finish what they can within a second and exit.
`

var errHelp = errors.New("help requested")

// A flagRow is one serve flag: all that the parser, --help and the README's
// flag table know of it. Its default is the value bind gives it, shown as
// the flag package prints it, or show where that says nothing (an empty
// list; a zero that means "work it out").
type flagRow struct {
	name, arg string // --name ARG
	help      string // lines broken by hand; "(default …)" goes at {default}, else at the end
	show      string
	bind      func(fs *flag.FlagSet, name string, c *serveConfig)
}

// serveFlags is serve's flag table. A new flag is one row here and one in
// the README's table (a test holds the two, and --help, together).
var serveFlags = []flagRow{
	{name: "listen", arg: "ADDR", show: clusterd.DefaultListen,
		help: "address to serve, repeatable; IPv6 as [::1]:8080,\nall interfaces as :8080",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) { fs.Var(&c.listen, name, "") }},
	{name: "workers", arg: "N", show: "one per available CPU, cgroup-aware",
		help: fmt.Sprintf("worker processes, at most %d", master.MaxWorkers),
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) { fs.IntVar(&c.opts.Workers, name, 0, "") }},
	{name: "sched", arg: "MODE", help: `how connections reach the workers {default}:
shared  every worker accepts on the master's socket
        (Node's SCHED_NONE, nginx's default)
rr      the master accepts and hands each connection
        to the next ready worker (Node's SCHED_RR); a
        connection a worker refuses, or that a dying
        worker never took, goes to another worker`,
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.StringVar(&c.opts.Sched, name, master.SchedShared, "")
		}},
	{name: "root", arg: "DIR", help: `serve the files below DIR instead of the demo app:
GET and HEAD, index.html, ETag/Last-Modified (304),
byte ranges (206/416), sendfile; nothing outside
DIR is reachable (.., encoded slashes, symlinks)`,
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) { fs.StringVar(&c.root, name, "", "") }},
	{name: "h2c", show: "off", help: `serve HTTP/2 over cleartext TCP besides HTTP/1.1:
prior knowledge (curl --http2-prior-knowledge) and
Upgrade: h2c (curl --http2). The demo app then runs
as a net/http Handler; not with --root`,
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) { fs.BoolVar(&c.h2c, name, false, "") }},
	{name: "control", arg: "PATH", show: "$XDG_RUNTIME_DIR/clusterd/master-PID.sock or /tmp/clusterd-UID/master-PID.sock",
		help: "control socket, mode 0600, for clusterd ctl; the\nmaster refuses a default directory that is not its\nown or that group or others may write",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) { fs.StringVar(&c.opts.Control, name, "", "") }},
	{name: "idle-timeout", arg: "D", help: "close a keep-alive connection idle this long",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.HTTP.IdleTimeout, name, httpcore.DefaultIdleTimeout, "")
		}},
	{name: "header-timeout", arg: "D", help: "time allowed to send a request head",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.HTTP.HeaderTimeout, name, httpcore.DefaultHeaderTimeout, "")
		}},
	{name: "request-timeout", arg: "D", help: "time allowed for a whole request, body included",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.HTTP.RequestTimeout, name, httpcore.DefaultRequestTimeout, "")
		}},
	{name: "max-header-bytes", arg: "SIZE", help: "larger request heads get 431",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			c.maxHeader = httpcore.DefaultMaxHeaderBytes
			fs.Var(&c.maxHeader, name, "")
		}},
	{name: "max-body-bytes", arg: "SIZE", help: "larger request bodies get 413",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			c.maxBody = httpcore.DefaultMaxBodyBytes
			fs.Var(&c.maxBody, name, "")
		}},
	{name: "graceful-timeout", arg: "D", help: "a draining worker is killed after this",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.GracefulTimeout, name, defaults.GracefulTimeout, "")
		}},
	{name: "ready-timeout", arg: "D", help: "a new worker must be serving within this",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.ReadyTimeout, name, defaults.ReadyTimeout, "")
		}},
	{name: "worker-timeout", arg: "D", help: "a worker whose event loop is silent this long is\nkilled and replaced",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.DurationVar(&c.opts.WorkerTimeout, name, defaults.WorkerTimeout, "")
		}},
	{name: "log-level", arg: "LEVEL", help: "trace, debug, info, warn or error",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.StringVar(&c.opts.LogLevel, name, defaults.LogLevel, "")
		}},
	{name: "log-format", arg: "FORMAT", help: "text or json",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			fs.StringVar(&c.logFormat, name, defaults.LogFormat, "")
		}},
}

// newServeFlags registers rows on a new flag set that parses into c.
func newServeFlags(rows []flagRow, c *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("clusterd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	for _, r := range rows {
		r.bind(fs, r.name, c)
	}
	return fs
}

// defaultText is row r's default as --help and the README show it; "" if
// it has none.
func (r flagRow) defaultText(fs *flag.FlagSet) string {
	if r.show != "" {
		return r.show
	}
	f := fs.Lookup(r.name)
	if d, ok := flagDuration(f); ok && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s" // 60s, not 1m0s
	}
	return f.DefValue
}

// flagDuration returns f's value if f is a duration flag.
func flagDuration(f *flag.Flag) (time.Duration, bool) {
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return 0, false
	}
	d, ok := g.Get().(time.Duration)
	return d, ok
}

// Layout of the flags in --help.
const (
	helpIndent = 28 // where the help text starts
	helpWidth  = 80 // where "(default …)" wraps
)

// flagUsage is the flags section of --help.
func flagUsage(rows []flagRow) string {
	fs := newServeFlags(rows, new(serveConfig))
	var b strings.Builder
	for _, r := range rows {
		help := r.help
		if d := r.defaultText(fs); d != "" && strings.Contains(help, "{default}") {
			help = strings.Replace(help, "{default}", "(default "+d+")", 1)
		} else if d != "" {
			help = wrapOn(help, "(default "+d+")")
		}
		for i, line := range strings.Split(help, "\n") {
			left := ""
			if i == 0 {
				left = "--" + r.name + " " + r.arg
			}
			fmt.Fprintf(&b, "  %-*s%s\n", helpIndent-2, left, line)
		}
	}
	return b.String()
}

// wrapOn appends unit to text's last line, or where that would pass
// helpWidth, on lines of its own, broken between words.
func wrapOn(text, unit string) string {
	last := text[strings.LastIndexByte(text, '\n')+1:]
	if helpIndent+len(last)+1+len(unit) <= helpWidth {
		return text + " " + unit
	}
	line := ""
	for _, w := range strings.Fields(unit) {
		switch {
		case line == "":
			line = w
		case helpIndent+len(line)+1+len(w) > helpWidth:
			text, line = text+"\n"+line, w
		default:
			line += " " + w
		}
	}
	return text + "\n" + line
}

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
func (l *listFlag) Get() any           { return []string(*l) }

// sizeFlag is a byte count with an optional K/KiB/M/MiB suffix.
type sizeFlag int64

// String writes the size as Set reads it, in MiB or KiB when it is whole.
func (s *sizeFlag) String() string {
	switch n := int64(*s); {
	case n != 0 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n != 0 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	default:
		return strconv.FormatInt(n, 10)
	}
}
func (s *sizeFlag) Get() any { return int64(*s) }
func (s *sizeFlag) Set(v string) error {
	n, err := parseSize(v)
	*s = sizeFlag(n)
	return err
}

func parseSize(v string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(v)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"K", 1 << 10}, {"M", 1 << 20}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return 0, fmt.Errorf("invalid size %q", v)
	}
	return n * mult, nil
}

// serveConfig is what serve's flags say.
type serveConfig struct {
	opts clusterd.Options
	root string // serve files from here instead of the demo app
	h2c  bool   // serve the demo app through net/http, with HTTP/2 cleartext

	listen             listFlag
	maxHeader, maxBody sizeFlag
	logFormat          string
}

// parseServe turns serve's flags into a serveConfig; every error is one line.
func parseServe(args []string) (serveConfig, error) {
	var cfg serveConfig
	fs := newServeFlags(serveFlags, &cfg)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	opts := &cfg.opts
	opts.Listen = cfg.listen
	opts.HTTP.MaxHeaderBytes = int(cfg.maxHeader)
	opts.HTTP.MaxBodyBytes = int64(cfg.maxBody)
	opts.LogJSON = cfg.logFormat == "json"
	if cfg.h2c && cfg.root != "" {
		return cfg, errors.New("--h2c serves the demo app; it does not combine with --root")
	}
	return cfg, validate(fs, *opts, cfg.logFormat)
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}

func validate(fs *flag.FlagSet, opts clusterd.Options, logFormat string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["workers"] && opts.Workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", opts.Workers)
	}
	if opts.Workers > master.MaxWorkers {
		return fmt.Errorf("--workers must be at most %d, got %d", master.MaxWorkers, opts.Workers)
	}
	var err error
	fs.VisitAll(func(f *flag.Flag) { // every duration is a timeout
		if d, ok := flagDuration(f); ok && d <= 0 && err == nil {
			err = fmt.Errorf("--%s must be positive, got %v", f.Name, d)
		}
	})
	if err != nil {
		return err
	}
	if hclog.LevelFromString(opts.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level must be trace, debug, info, warn or error, got %q", opts.LogLevel)
	}
	if !slices.Contains(master.SchedModes, opts.Sched) {
		return fmt.Errorf("--sched must be %s, got %q", orList(master.SchedModes), opts.Sched)
	}
	if logFormat != "text" && logFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, got %q", logFormat)
	}
	for _, addr := range opts.Listen {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return fmt.Errorf("--listen %q: want host:port", addr)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("--listen %q: bad port %q", addr, port)
		}
	}
	return nil
}
