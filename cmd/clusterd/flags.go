package main

import (
	"errors"
	"flag"
	"fmt"
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
	"github.com/clusterd/clusterd/worker"
)

// usage is what clusterd --help prints: usageHead, the flags of serve and
// ctl from their tables, usageTail.
var usage = strings.NewReplacer("{maxWorkers}", strconv.Itoa(master.MaxWorkers)).Replace(
	usageHead + flagUsage(serveFlags) + "\nctl flags:\n" + flagUsage(ctlFlags) + usageTail)

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
  clusterd check [flags]          check serve's flags and configuration (listeners,
                                  --root, --user and --group) without binding or
                                  starting anything, as nginx -t: exit 0 with
                                  "configuration ok", or 1 with the reason
  clusterd ctl [ctl flags] COMMAND
                                  control a running master (see ctl flags):
      status                      the master and a table of its workers
      top                         a live view of the pool, a frame per --interval
                                  until interrupted or --count frames:
                                  requests/s, connections, in-flight requests,
                                  resident memory and state of each worker
      reload                      rolling restart: one worker at a time, start a
                                  replacement, wait until it serves, drain the old
                                  one. Exits non-zero if a replacement fails; the
                                  remaining old workers keep serving. A reload
                                  asked for while one runs is refused (one asked
                                  for while --max-requests or --max-rss replaces
                                  a worker follows it).
      upgrade                     master binary upgrade: start a new master from
                                  the binary now on disk, with the same flags; it
                                  checks itself (clusterd check), takes over the
                                  listening and control sockets and starts its
                                  workers; once they serve, it rewrites --pid-file
                                  and tells systemd (MAINPID=), and this master
                                  drains its workers and exits. A new master that
                                  fails its check, exits, or is not serving within
                                  --ready-timeout is killed: this one serves on
                                  and ctl exits non-zero with the reason. Refused
                                  during a reload or another upgrade.
      scale N                     grow or shrink the pool to N workers (1..{maxWorkers})
      stop                        graceful stop
                                  ctl refuses a socket, or a directory holding
                                  it, that another user owns or may write.
  clusterd version                print the version
  clusterd help                   print this help

Serve flags (-flag and --flag are the same; durations like 500ms, 5s, 1m;
sizes in bytes or with a K, KiB, M or MiB suffix):
`

const usageTail = `
Signals to the master:
  SIGTERM, SIGINT   graceful stop: workers finish in-flight requests, then exit 0;
                    a second signal stops at once (SIGTERM waits
                    --shutdown-delay first, not ready but serving)
  SIGQUIT           immediate stop
  SIGHUP            rolling restart, as clusterd ctl reload
  SIGUSR2           master binary upgrade, as clusterd ctl upgrade
  SIGTTIN, SIGTTOU  one worker more, one fewer (never below 1)
  SIGUSR1           the workers reopen the access log

A worker that exits unexpectedly is replaced at once; one that keeps
crashing is restarted after growing delays (100ms doubling up to 15s). A
worker whose event loop stops turning for --worker-timeout is sent SIGQUIT:
it writes the stacks of all its goroutines to the log (where it was stuck)
and exits, or is killed 2s later; then it is replaced. A draining worker
stops accepting at once, finishes its in-flight requests, answers the next
request on each keep-alive connection with "Connection: close", and closes
connections that stay idle for a second. When the master dies, its workers
finish what they can within a second and exit.

Each worker runs with GOMAXPROCS = CPUs / workers (at least 1), unless
GOMAXPROCS is set in the master's environment: then the workers keep it.

Under a service manager (systemd Type=notify, $NOTIFY_SOCKET) the master
reports READY=1 once every worker serves, RELOADING=1 and READY=1 around a
rolling restart, STOPPING=1, a one-line STATUS=, and pings the watchdog
when $WATCHDOG_USEC is set. As PID 1 (in a container) it also reaps the
orphaned processes that become its children.
`

var errHelp = errors.New("help requested")

// serveFlags is serve's flag table. A new flag is one row here and one in
// the README's table (a test holds the two, and --help, together).
var serveFlags = []flagRow[serveConfig]{
	{name: "listen", arg: "ADDR", show: "the sockets systemd passed, else " + clusterd.DefaultListen,
		help: `what to serve, repeatable:
HOST:PORT     TCP; IPv6 as [::1]:8080, all
              interfaces as :8080
unix:PATH     a Unix socket file the master creates
              (a stale one is replaced; a live one,
              a non-socket or another user's file
              is refused) and removes on stop
unix:@NAME    Linux abstract Unix socket (no file)
fd:N          a listening socket inherited as fd N
systemd:NAME  the sockets systemd passed with
              FileDescriptorName=NAME (LISTEN_FDS)
A HOST:PORT or unix:PATH that systemd already
passed (socket activation) is used, not bound.`,
		bind: valueFlag(func(c *serveConfig) flag.Value { return &c.listen })},
	{name: "backlog", arg: "N", show: strconv.Itoa(master.DefaultBacklog),
		help: `accept queue length of every listener, as Node
and nginx: an overloaded server refuses early
instead of queueing thousands of connections;
capped by net.core.somaxconn. Inherited sockets
keep theirs unless it is given`,
		bind: intFlag(func(c *serveConfig) *int { return &c.sockets.backlog }, 0)},
	{name: "socket-mode", arg: "MODE", help: "permissions of unix:PATH socket files",
		bind: func(fs *flag.FlagSet, name string, c *serveConfig) {
			c.sockets.mode = modeFlag(master.DefaultSocketMode)
			fs.Var(&c.sockets.mode, name, "")
		}},
	{name: "tcp-defer-accept", show: "off", help: `TCP_DEFER_ACCEPT: a worker is woken only once a
connection's first bytes arrive (or after
--header-timeout), not for connections that
stay silent`,
		bind: boolFlag(func(c *serveConfig) *bool { return &c.sockets.deferAccept }, false)},
	{name: "tcp-fastopen", arg: "N", show: "0 (off)", help: `TCP_FASTOPEN with a queue of N; the kernel
serves it only when the sysctl
net.ipv4.tcp_fastopen has the server flag (2)`,
		bind: intFlag(func(c *serveConfig) *int { return &c.sockets.fastOpen }, 0)},
	{name: "workers", arg: "N", show: "one per available CPU, cgroup-aware",
		help: fmt.Sprintf("worker processes, at most %d", master.MaxWorkers),
		bind: intFlag(func(c *serveConfig) *int { return &c.opts.Workers }, 0)},
	{name: "sched", arg: "MODE", help: `how connections reach the workers {default}:
shared  every worker accepts on the master's socket
        (Node's SCHED_NONE, nginx's default); one
        clearly ahead of the others in open or new
        connections holds off for a moment
rr      the master accepts and hands each connection
        to the next ready worker (Node's SCHED_RR); a
        connection a worker refuses, or that a dying
        worker never took, goes to another worker
reuseport  each worker slot accepts on a SO_REUSEPORT
        socket of its own, held by the master for the
        slot's life: a crash or a reload keeps its
        queue; scaling down steers new connections
        away (BPF) and closes a socket only once its
        queue is empty; a worker clearly over its
        share of open connections gives idle ones
        through the master to the others.
        TCP listeners only; others are shared`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.Sched }, master.SchedShared)},
	{name: "rr-policy", arg: "POLICY", help: `which worker gets a connection under --sched rr
{default}:
round-robin  each ready worker in turn
least-conns  the one with the fewest open
             connections (as it reports them with
             each hand-off answer and heartbeat,
             plus those handed to it since)`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.RRPolicy }, master.RRPolicyRoundRobin)},
	{name: "tls-listen", arg: "ADDR", help: `serve HTTPS on ADDR (any --listen form),
repeatable: TLS 1.2 and 1.3, ALPN h2 and
http/1.1; needs --tls-cert and --tls-key`,
		bind: valueFlag(func(c *serveConfig) flag.Value { return &c.tlsListen })},
	{name: "tls-cert", arg: "FILE", help: `PEM certificate chain for the TLS listeners,
repeatable: the Nth goes with the Nth --tls-key;
with several, the client's server name (SNI)
picks one. Each new worker loads the files as
they are on disk: replace them and reload to
rotate; a pair that does not load refuses the
reload and the workers keep serving`,
		bind: valueFlag(func(c *serveConfig) flag.Value { return &c.tlsCerts })},
	{name: "tls-key", arg: "FILE", help: "PEM private key of the Nth --tls-cert",
		bind: valueFlag(func(c *serveConfig) flag.Value { return &c.tlsKeys })},
	{name: "root", arg: "DIR", help: `serve the files below DIR instead of the demo app:
GET and HEAD, index.html, ETag/Last-Modified (304),
byte ranges (206/416), sendfile; nothing outside
DIR is reachable (.., encoded slashes, symlinks)`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.root }, "")},
	{name: "h2c", show: "off", help: `serve HTTP/2 over cleartext TCP besides HTTP/1.1:
prior knowledge (curl --http2-prior-knowledge) and
Upgrade: h2c (curl --http2). The demo app then runs
as a net/http Handler; not with --root`,
		bind: boolFlag(func(c *serveConfig) *bool { return &c.h2c }, false)},
	{name: "user", arg: "NAME", help: `run the workers as this user (a name or a uid),
with no supplementary groups; the master must be
started as root, and keeps root to bind (ports
below 1024 too) and to supervise. Files only root
can read stay out of the workers' reach. The
control socket then admits root and NAME only`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.User }, "")},
	{name: "group", arg: "NAME", show: "the user's primary group", help: "the workers' group",
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.Group }, "")},
	{name: "control", arg: "PATH", show: "master-PID.sock in $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), else in $XDG_RUNTIME_DIR/clusterd, else in /tmp/clusterd-UID",
		help: "control socket, mode 0600, for clusterd ctl; the\nmaster refuses a default directory that is not its\nown or that group or others may write",
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.Control }, "")},
	{name: "pid-file", arg: "PATH", help: `write the master's pid here (temporary file and
rename, so never half-written); a master upgrade
rewrites it with the new master's pid. Removed on
stop`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.PIDFile }, "")},
	{name: "idle-timeout", arg: "D", help: "close a keep-alive connection idle this long",
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.HTTP.IdleTimeout }, httpcore.DefaultIdleTimeout)},
	{name: "header-timeout", arg: "D", help: "time allowed to send a request head",
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.HTTP.HeaderTimeout }, httpcore.DefaultHeaderTimeout)},
	{name: "request-timeout", arg: "D", help: "time allowed for a whole request, body included",
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.HTTP.RequestTimeout }, httpcore.DefaultRequestTimeout)},
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
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.GracefulTimeout }, defaults.GracefulTimeout)},
	{name: "ready-timeout", arg: "D", help: "a new worker must be serving within this; in a\nmaster upgrade, the new master and its workers",
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.ReadyTimeout }, defaults.ReadyTimeout)},
	{name: "worker-timeout", arg: "D", help: "a worker whose event loop is silent this long is\nkilled and replaced",
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.WorkerTimeout }, defaults.WorkerTimeout)},
	{name: "log-level", arg: "LEVEL", help: "trace, debug, info, warn or error",
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.LogLevel }, defaults.LogLevel)},
	{name: "log-format", arg: "FORMAT", help: "text or json",
		bind: stringFlag(func(c *serveConfig) *string { return &c.logFormat }, defaults.LogFormat)},
	{name: "admin-listen", arg: "ADDR", help: `serve /metrics (Prometheus), /healthz and /readyz
on ADDR from the master itself, never from a worker,
so it answers while every worker is busy; off unless
given, e.g. 127.0.0.1:9090`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.AdminListen }, "")},
	{name: "shutdown-delay", arg: "D", help: `on SIGTERM, fail /readyz at once and serve on for D
before the graceful stop, so that a load balancer
stops sending traffic first`,
		bind: durationFlag(func(c *serveConfig) *time.Duration { return &c.opts.ShutdownDelay }, 0)},
	{name: "max-requests", arg: "N", help: `replace a worker once it has served N requests:
a replacement starts, then the worker drains, one
worker at a time`,
		bind: uint64Flag(func(c *serveConfig) *uint64 { return &c.opts.MaxRequests }, 0)},
	{name: "max-rss", arg: "SIZE", help: `replace a worker whose resident memory exceeds
SIZE, as --max-requests does`,
		bind: valueFlag(func(c *serveConfig) flag.Value { return &c.maxRSS })},
	{name: "access-log", arg: "PATH|-", help: `append a line per response to PATH (- for standard
output), written by each worker without blocking its
loop; lines past a 1MiB queue are dropped and
counted; SIGUSR1 reopens the file (logrotate)`,
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.AccessLog }, "")},
	{name: "access-log-format", arg: "F", help: "common (NCSA, as nginx and Apache) or json",
		bind: stringFlag(func(c *serveConfig) *string { return &c.opts.AccessLogFormat }, worker.AccessLogCommon)},
}

// serveConfig is what serve's flags say.
type serveConfig struct {
	opts clusterd.Options
	root string // serve files from here instead of the demo app
	h2c  bool   // serve the demo app through net/http, with HTTP/2 cleartext

	listen             listFlag
	tlsListen          listFlag
	tlsCerts, tlsKeys  listFlag
	sockets            socketFlags
	maxHeader, maxBody sizeFlag
	maxRSS             sizeFlag
	logFormat          string
}

// parseServe turns serve's flags into a serveConfig; every error is one line.
func parseServe(args []string) (serveConfig, error) {
	var cfg serveConfig
	fs := newFlags("clusterd", serveFlags, &cfg)
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
	if err := cfg.applyTLS(); err != nil {
		return cfg, err
	}
	opts.HTTP.MaxHeaderBytes = int(cfg.maxHeader)
	opts.HTTP.MaxBodyBytes = int64(cfg.maxBody)
	opts.MaxRSS = uint64(cfg.maxRSS)
	opts.LogJSON = cfg.logFormat == "json"
	if cfg.h2c && cfg.root != "" {
		return cfg, errors.New("--h2c serves the demo app; it does not combine with --root")
	}
	if err := validate(fs, *opts, cfg.logFormat); err != nil {
		return cfg, err
	}
	return cfg, cfg.sockets.apply(fs, opts)
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
	if err := positiveDurations(fs, "shutdown-delay"); err != nil { // a delay may be 0
		return err
	}
	if hclog.LevelFromString(opts.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level must be trace, debug, info, warn or error, got %q", opts.LogLevel)
	}
	if !slices.Contains(master.SchedModes, opts.Sched) {
		return fmt.Errorf("--sched must be %s, got %q", orList(master.SchedModes), opts.Sched)
	}
	if !slices.Contains(master.RRPolicies, opts.RRPolicy) {
		return fmt.Errorf("--rr-policy must be %s, got %q", orList(master.RRPolicies), opts.RRPolicy)
	}
	if logFormat != "text" && logFormat != "json" {
		return fmt.Errorf("--log-format must be text or json, got %q", logFormat)
	}
	if opts.AdminListen != "" {
		if err := checkAddr("admin-listen", opts.AdminListen); err != nil {
			return err
		}
	}
	if f := opts.AccessLogFormat; f != "common" && f != "json" {
		return fmt.Errorf("--access-log-format must be common or json, got %q", f)
	}
	if opts.ShutdownDelay < 0 {
		return fmt.Errorf("--shutdown-delay must not be negative, got %v", opts.ShutdownDelay)
	}
	return nil
}

func checkAddr(flag, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--%s %q: want host:port", flag, addr)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("--%s %q: bad port %q", flag, addr, port)
	}
	return nil
}

// applyTLS pairs the certificate and key files and checks that TLS
// listeners and certificates come together.
func (c *serveConfig) applyTLS() error {
	switch {
	case len(c.tlsCerts) != len(c.tlsKeys):
		return fmt.Errorf("--tls-cert and --tls-key come in pairs, got %d and %d", len(c.tlsCerts), len(c.tlsKeys))
	case len(c.tlsListen) > 0 && len(c.tlsCerts) == 0:
		return errors.New("--tls-listen needs --tls-cert and --tls-key")
	case len(c.tlsListen) == 0 && len(c.tlsCerts) > 0:
		return errors.New("--tls-cert needs --tls-listen")
	case len(c.tlsListen) > 0 && c.opts.Sched == master.SchedRR:
		return errors.New("--tls-listen needs --sched shared or reuseport: under rr the master accepts, and the workers cannot tell which connections are TLS")
	}
	c.opts.TLSListen = c.tlsListen
	for i := range c.tlsCerts {
		c.opts.TLSCerts = append(c.opts.TLSCerts, clusterd.CertFile{Cert: c.tlsCerts[i], Key: c.tlsKeys[i]})
	}
	return nil
}
