package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd"
)

const usage = `clusterd - a multi-process HTTP/1.1 (and h2c) server

A master process binds the listening sockets and starts N worker processes;
each worker receives the sockets over a Unix socket and serves HTTP from its
own epoll event loop. The master restarts workers that crash and drains them
on shutdown. Without --root, workers serve the built-in demo app:

  GET /              200 "Hello World"
  ANY /echo          200 JSON {"method","url","headers","body"} of the request
  GET /worker        200 JSON {"id","pid","generation","requests"} of the worker
  GET /delay?ms=N    200 after N milliseconds (0..60000), without blocking the loop

Usage:
  clusterd [serve] [flags]        run a master and its workers (the default)
  clusterd ctl [--control PATH] [--json] COMMAND
                                  control a running master:
      status                      the master and a table of its workers
                                  (--json: {"master":{...},"workers":[{"id","pid",
                                  "generation","state","requests","connections",
                                  "restarts",...}]})
      reload                      rolling restart: one worker at a time, start a
                                  replacement, wait until it serves, drain the old
                                  one. Exits non-zero if a replacement fails; the
                                  remaining old workers keep serving. A reload
                                  asked for while one runs is refused.
      scale N                     grow or shrink the pool to N workers
      stop                        graceful stop
                                  With no --control, ctl finds the one master
                                  started without --control.
  clusterd version                print the version
  clusterd help                   print this help

Flags (-flag and --flag are the same; durations like 500ms, 5s, 1m;
sizes in bytes or with a K, KiB, M or MiB suffix):
  --listen ADDR             address to serve, repeatable; IPv6 as [::1]:8080,
                            all interfaces as :8080 (default 127.0.0.1:8080)
  --workers N               worker processes (default: the CPUs available
                            to the process, cgroup-aware)
  --sched MODE              how connections reach the workers (default shared):
                            shared  every worker accepts on the master's socket
                                    (Node's SCHED_NONE, nginx's default)
                            rr      the master accepts and hands each connection
                                    to the next ready worker (Node's SCHED_RR); a
                                    connection a worker refuses, or that a dying
                                    worker never took, goes to another worker
  --root DIR                serve the files below DIR instead of the demo app:
                            GET and HEAD, index.html, ETag/Last-Modified (304),
                            byte ranges (206/416), sendfile; nothing outside
                            DIR is reachable (.., encoded slashes, symlinks)
  --h2c                     serve HTTP/2 over cleartext TCP besides HTTP/1.1:
                            prior knowledge (curl --http2-prior-knowledge) and
                            Upgrade: h2c (curl --http2). The demo app then runs
                            as a net/http Handler; not with --root
  --control PATH            control socket, mode 0600, for clusterd ctl
                            (default: $XDG_RUNTIME_DIR/clusterd/master-PID.sock,
                            or /tmp/clusterd-UID/master-PID.sock)
  --idle-timeout D          close a keep-alive connection idle this long (default 5s)
  --header-timeout D        time allowed to send a request head (default 10s)
  --request-timeout D       time allowed for a whole request, body included (default 60s)
  --max-header-bytes SIZE   larger request heads get 431 (default 16KiB)
  --max-body-bytes SIZE     larger request bodies get 413 (default 1MiB)
  --graceful-timeout D      a draining worker is killed after this (default 30s)
  --ready-timeout D         a new worker must be serving within this (default 10s)
  --worker-timeout D        a worker whose event loop is silent this long is
                            killed and replaced (default 30s)
  --log-level LEVEL         trace, debug, info, warn or error (default info)
  --log-format FORMAT       text or json (default text)

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

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// sizeFlag is a byte count with an optional K/KiB/M/MiB suffix.
type sizeFlag int64

func (s *sizeFlag) String() string { return strconv.FormatInt(int64(*s), 10) }
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
}

// parseServe turns serve's flags into a serveConfig; every error is one line.
func parseServe(args []string) (serveConfig, error) {
	var (
		cfg       serveConfig
		opts      = &cfg.opts
		listen    listFlag
		maxHeader = sizeFlag(16 << 10)
		maxBody   = sizeFlag(1 << 20)
		logFormat string
	)
	fs := flag.NewFlagSet("clusterd", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.Var(&listen, "listen", "")
	fs.IntVar(&opts.Workers, "workers", 0, "")
	fs.StringVar(&opts.Control, "control", "", "")
	fs.StringVar(&opts.Sched, "sched", "shared", "")
	fs.StringVar(&cfg.root, "root", "", "")
	fs.BoolVar(&cfg.h2c, "h2c", false, "")
	fs.DurationVar(&opts.HTTP.IdleTimeout, "idle-timeout", 5*time.Second, "")
	fs.DurationVar(&opts.HTTP.HeaderTimeout, "header-timeout", 10*time.Second, "")
	fs.DurationVar(&opts.HTTP.RequestTimeout, "request-timeout", 60*time.Second, "")
	fs.Var(&maxHeader, "max-header-bytes", "")
	fs.Var(&maxBody, "max-body-bytes", "")
	fs.DurationVar(&opts.GracefulTimeout, "graceful-timeout", 30*time.Second, "")
	fs.DurationVar(&opts.ReadyTimeout, "ready-timeout", 10*time.Second, "")
	fs.DurationVar(&opts.WorkerTimeout, "worker-timeout", 30*time.Second, "")
	fs.StringVar(&opts.LogLevel, "log-level", "info", "")
	fs.StringVar(&logFormat, "log-format", "text", "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, errHelp
		}
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	opts.Listen = listen
	opts.HTTP.MaxHeaderBytes = int(maxHeader)
	opts.HTTP.MaxBodyBytes = int64(maxBody)
	opts.LogJSON = logFormat == "json"
	if cfg.h2c && cfg.root != "" {
		return cfg, errors.New("--h2c serves the demo app; it does not combine with --root")
	}
	return cfg, validate(fs, *opts, logFormat)
}

func validate(fs *flag.FlagSet, opts clusterd.Options, logFormat string) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["workers"] && opts.Workers < 1 {
		return fmt.Errorf("--workers must be at least 1, got %d", opts.Workers)
	}
	for name, d := range map[string]time.Duration{
		"idle-timeout": opts.HTTP.IdleTimeout, "header-timeout": opts.HTTP.HeaderTimeout,
		"request-timeout": opts.HTTP.RequestTimeout, "graceful-timeout": opts.GracefulTimeout,
		"ready-timeout": opts.ReadyTimeout, "worker-timeout": opts.WorkerTimeout,
	} {
		if d <= 0 {
			return fmt.Errorf("--%s must be positive, got %v", name, d)
		}
	}
	if hclog.LevelFromString(opts.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level must be trace, debug, info, warn or error, got %q", opts.LogLevel)
	}
	if opts.Sched != "shared" && opts.Sched != "rr" {
		return fmt.Errorf("--sched must be shared or rr, got %q", opts.Sched)
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
