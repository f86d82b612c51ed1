// Package clusterd turns a Go program into a multi-process HTTP/1.1
// server: a master process that binds the listening sockets and supervises
// N worker processes, each serving from its own epoll event loop.
//
// Call RunHTTP (for a standard net/http Handler) or Run (for a native
// httpcore.Handler) from main(). In the master it binds, starts the workers
// by re-executing the program with the same arguments, and supervises
// them; in each worker (the same program, started by the master) it serves
// the handler. Code before it therefore runs in every process, so keep it
// cheap and free of side effects such as binding ports.
//
// Any http.Handler runs unchanged with RunHTTP: a ServeMux, a third-party
// router, http.FileServer, a WebSocket server. Its handlers run on a
// bounded pool of goroutines beside each worker's event loop (see package
// nethttp), with streamed request and response bodies, http.Flusher,
// http.Hijacker, http.ResponseController deadlines, and a request context
// that is cancelled when the client goes away; with Options.H2C it speaks
// HTTP/2 over cleartext TCP too. A draining worker calls
// Options.OnShutdown, where long-lived connections are told to close.
//
//	func main() {
//		mux := http.NewServeMux()
//		mux.HandleFunc("GET /hello/{name}", func(w http.ResponseWriter, r *http.Request) {
//			fmt.Fprintf(w, "hello, %s\n", r.PathValue("name"))
//		})
//		if err := clusterd.RunHTTP(clusterd.Options{Listen: []string{":8080"}}, mux); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// Options.TLSListen serves HTTPS (TLS 1.2 and 1.3, HTTP/1.1 and HTTP/2)
// to the same handler; see package tlsconn.
//
// A native handler runs on the event loop itself, which is faster, but must
// never block (see httpcore.Handler):
//
//	func main() {
//		err := clusterd.Run(clusterd.Options{Listen: []string{":8080"}},
//			httpcore.HandlerFunc(func(w *httpcore.ResponseWriter, r *httpcore.Request) {
//				w.WriteString("hello\n")
//			}))
//		if err != nil {
//			log.Fatal(err)
//		}
//	}
package clusterd

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/defaults"
	"github.com/clusterd/clusterd/master"
	"github.com/clusterd/clusterd/nethttp"
	"github.com/clusterd/clusterd/worker"
)

// Options configures the master and its workers. Zero values take the defaults.
type Options struct {
	// Listen lists the listeners to serve: "host:port" (IPv6
	// "[::1]:8080"), "unix:/path/app.sock", "unix:@name" (abstract),
	// "fd:N" (an inherited listening socket) or "systemd:NAME". Default:
	// the sockets passed by the service manager (LISTEN_FDS), else
	// 127.0.0.1:8080.
	Listen []string
	// Sockets sets the backlog, the Unix socket file mode and the TCP
	// options of every listener.
	Sockets SocketOptions
	// Workers is the number of worker processes; default the CPUs
	// available to the process (cgroup-aware).
	Workers int
	// Sched is how connections reach workers: "shared" (default: every
	// worker accepts on the master's socket), "rr" (the master accepts
	// and hands connections to the workers) or "reuseport" (each worker
	// slot accepts on a SO_REUSEPORT socket of its own).
	Sched string
	// RRPolicy is how "rr" picks a worker: "round-robin" (default) or
	// "least-conns" (the one with the fewest open connections).
	RRPolicy string
	// HTTP sets the per-connection limits and timeouts of every worker.
	HTTP httpcore.Config
	// NetHTTP configures how RunHTTP runs the net/http Handler in each
	// worker: the bound on handler goroutines, by default 64×GOMAXPROCS.
	NetHTTP nethttp.Config
	// H2C makes RunHTTP serve HTTP/2 over cleartext TCP besides HTTP/1.1:
	// prior knowledge and "Upgrade: h2c" (it sets NetHTTP.H2C).
	H2C bool
	// OnShutdown, if set, is called in a worker, on a goroutine of its
	// own, when the worker starts draining (a rolling restart, a stop), as
	// net/http's Server.RegisterOnShutdown functions are: the place to
	// send WebSocket clients a close frame. The worker then waits for its
	// hijacked connections to close, up to GracefulTimeout.
	OnShutdown func()
	// GracefulTimeout bounds a worker's drain before it is killed; default 30s.
	GracefulTimeout time.Duration
	// ReadyTimeout bounds a new worker's start-up; default 10s.
	ReadyTimeout time.Duration
	// WorkerTimeout: a worker whose event loop is silent this long is
	// replaced; default 30s.
	WorkerTimeout time.Duration
	// Control is the control socket's path; default: master-PID.sock in
	// $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=), $XDG_RUNTIME_DIR/clusterd
	// or /tmp/clusterd-UID.
	Control string
	// User and Group, when set, are who the workers run as (a name or a
	// number; Group defaults to User's primary group), with supplementary
	// groups cleared. The master must be started as root: it binds (ports
	// below 1024 too) and supervises as root; only root and User may use
	// the control socket.
	User, Group string
	// PIDFile, if set, is where the master writes its pid (atomically; a
	// new master rewrites it when a master upgrade hands over to it); it is
	// removed when the master stops.
	PIDFile string
	// LogLevel is trace, debug, info, warn or error; default info.
	LogLevel string
	// LogJSON logs JSON lines instead of text.
	LogJSON bool

	// TLSListen lists listeners, in the forms of Listen, served over TLS
	// 1.2 and 1.3 with ALPN h2 and http/1.1 (see package tlsconn). They
	// need a certificate: TLSCerts, or TLSConfig's.
	TLSListen []string
	// TLSCerts are certificate and key files, loaded by every worker as it
	// starts: a rolling restart picks up files replaced on disk, and one
	// that does not load refuses the restart with the reason. With several,
	// the client's server name (SNI) picks one.
	TLSCerts []CertFile
	// TLSConfig, if set, is the base of the workers' TLS configuration
	// (certificates, GetCertificate, cipher suites, client auth). Its
	// session ticket keys are replaced by the master's, shared by every
	// worker and rotated hourly, unless SessionTicketsDisabled.
	TLSConfig *tls.Config
	// AdminListen, if set, is the address of the master's admin HTTP
	// server: /metrics (Prometheus), /healthz, /readyz. Off by default.
	AdminListen string
	// ShutdownDelay: on SIGTERM /readyz fails at once while the workers
	// serve on this long; then they drain. Default 0.
	ShutdownDelay time.Duration
	// AccessLog is a file the workers append a line per response to ("-":
	// standard output; "": none), reopened on SIGUSR1; AccessLogFormat is
	// "common" (default) or "json".
	AccessLog       string
	AccessLogFormat string
	// MaxRequests and MaxRSS (bytes), if set, recycle a worker that has
	// served that many requests or whose resident memory exceeds it: a
	// replacement starts and, once it serves, the worker drains; one
	// worker at a time.
	MaxRequests uint64
	MaxRSS      uint64

	onShutdown []func() // the handler's own hooks, before OnShutdown
}

// DefaultListen is the address served when Options.Listen is empty and
// the service manager passed no sockets.
const DefaultListen = "127.0.0.1:8080"

// SocketOptions configure every listener; see master.SocketOptions.
type SocketOptions = master.SocketOptions

// IsWorker reports whether this process is a worker started by a master,
// for code that runs before Run (Run takes the variables that say so, so
// that programs a worker starts are not taken for workers; a handler runs
// in a worker by definition, and RunFunc tells it which one).
func IsWorker() bool { return worker.IsWorker() }

// RunHTTP is Run for h, any standard net/http Handler, which each worker
// serves through nethttp.New(h, opts.NetHTTP). A draining worker tells its
// HTTP/2 connections to go away.
func RunHTTP(opts Options, h http.Handler) error {
	return RunHTTPFunc(opts, func(*worker.Worker) http.Handler { return h })
}

// RunHTTPFunc is RunHTTP for the net/http Handler newHandler returns in
// each worker, given the running worker (its id, generation and request
// count).
func RunHTTPFunc(opts Options, newHandler func(*worker.Worker) http.Handler) error {
	cfg := opts.NetHTTP
	cfg.H2C = cfg.H2C || opts.H2C
	var a *nethttp.Handler // set in the worker before it serves
	opts.onShutdown = append(opts.onShutdown, func() {
		if a != nil {
			a.Shutdown()
		}
	})
	return RunFunc(opts, func(w *worker.Worker) httpcore.Handler {
		a = nethttp.New(newHandler(w), cfg)
		return a
	})
}

// Run runs the master or, in a process the master started, a worker
// serving h. In the master it returns after a stop signal has been handled,
// or with an error when it cannot start (a busy port, say).
//
// With master.EnvCheck=1 in the environment (as a master upgrade runs the
// new binary first), Run only checks opts, as Check does, prints
// "configuration ok" or the reason, and exits 0 or 1.
func Run(opts Options, h httpcore.Handler) error {
	return RunFunc(opts, func(*worker.Worker) httpcore.Handler { return h })
}

// RunFunc is Run for the handler newHandler returns in each worker, given
// the running worker (its id, generation and request count).
func RunFunc(opts Options, newHandler func(*worker.Worker) httpcore.Handler) error {
	if len(opts.Listen) == 0 && len(opts.TLSListen) == 0 && !master.Activated() {
		opts.Listen = []string{DefaultListen}
	}
	if os.Getenv(master.EnvCheck) == "1" && !worker.IsWorker() {
		checkAndExit(opts)
	}
	level := hclog.LevelFromString(opts.LogLevel)
	if level == hclog.NoLevel {
		level = hclog.LevelFromString(defaults.LogLevel)
	}
	tlsCfg, err := tlsConfig(opts) // in the master: checks the files now
	if err != nil {
		return err
	}
	listen := append(opts.Listen[:len(opts.Listen):len(opts.Listen)], opts.TLSListen...)
	if worker.IsWorker() {
		hooks := opts.onShutdown
		if opts.OnShutdown != nil {
			hooks = append(hooks, opts.OnShutdown)
		}
		return worker.RunFunc(worker.Config{
			OnShutdown:      hooks,
			Listen:          listen,
			TLS:             tlsCfg,
			TLSListen:       opts.TLSListen,
			HTTP:            opts.HTTP,
			GracefulTimeout: opts.GracefulTimeout,
			Logger:          hclog.New(&hclog.LoggerOptions{JSONFormat: true, Output: os.Stderr, Level: level}),
			AccessLog:       opts.AccessLog,
			AccessLogFormat: opts.AccessLogFormat,
		}, newHandler)
	}
	if err := checkAccessLog(opts); err != nil {
		return err
	}
	cfg := masterConfig(opts)
	cfg.Logger = hclog.New(&hclog.LoggerOptions{
		Name: "master", JSONFormat: opts.LogJSON, Output: os.Stderr, Level: level,
	})
	m, err := master.New(cfg)
	if err != nil {
		return err
	}
	return m.Run()
}

// Check checks opts as Run would, without binding or starting anything
// (see master.Check): `clusterd check`, like `nginx -t`.
func Check(opts Options) error {
	if level := hclog.LevelFromString(opts.LogLevel); opts.LogLevel != "" && level == hclog.NoLevel {
		return fmt.Errorf("unknown log level %q", opts.LogLevel)
	}
	if err := checkAccessLog(opts); err != nil {
		return err
	}
	if _, err := tlsConfig(opts); err != nil {
		return err
	}
	return master.Check(masterConfig(opts))
}

// checkAccessLog checks that the workers can open the access log.
func checkAccessLog(opts Options) error {
	if opts.AccessLog == "" {
		return nil
	}
	format := opts.AccessLogFormat
	if format == "" {
		format = worker.AccessLogCommon
	}
	return worker.CheckAccessLog(opts.AccessLog, format)
}

func checkAndExit(opts Options) {
	if err := Check(opts); err != nil {
		fmt.Fprintf(os.Stderr, "%s: configuration check failed: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
	fmt.Println("configuration ok")
	os.Exit(0)
}

func masterConfig(opts Options) master.Config {
	return master.Config{
		Listen:          append(opts.Listen[:len(opts.Listen):len(opts.Listen)], opts.TLSListen...),
		TicketKeys:      len(opts.TLSListen) > 0 && (opts.TLSConfig == nil || !opts.TLSConfig.SessionTicketsDisabled),
		CheckReload:     func() error { _, err := tlsConfig(opts); return err },
		Sockets:         opts.Sockets,
		Workers:         opts.Workers,
		Sched:           opts.Sched,
		RRPolicy:        opts.RRPolicy,
		GracefulTimeout: opts.GracefulTimeout,
		ReadyTimeout:    opts.ReadyTimeout,
		WorkerTimeout:   opts.WorkerTimeout,
		Control:         opts.Control,
		AdminListen:     opts.AdminListen,
		ShutdownDelay:   opts.ShutdownDelay,
		MaxRequests:     opts.MaxRequests,
		MaxRSS:          opts.MaxRSS,
		AccessLog:       opts.AccessLog,
		User:            opts.User,
		Group:           opts.Group,
		PIDFile:         opts.PIDFile,
	}
}
