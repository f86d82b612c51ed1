// Command clusterd is a multi-process HTTP/1.1 server: a master binds the
// listening sockets and supervises N worker processes, each serving from its
// own epoll event loop. Run `clusterd --help` for usage.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/clusterd/clusterd"
	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/static"
	"github.com/clusterd/clusterd/worker"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run dispatches the sub-command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 {
		switch args[0] {
		case "serve", "check", "ctl", "version", "help":
			cmd, args = args[0], args[1:]
		}
	}
	switch cmd {
	case "version":
		fmt.Fprintf(stdout, "clusterd %s %s %s/%s\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "ctl":
		return ctl(args, stdout, stderr)
	case "check":
		return check(args, stdout, stderr)
	}
	return serve(args, stdout, stderr)
}

// check checks serve's flags and configuration without binding or
// starting anything, as nginx -t does: exit 0 with "configuration ok", or
// 1 with the reason on one line.
func check(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err == nil && cfg.root != "" {
		var files *static.Handler
		if files, err = static.New(cfg.root); err == nil {
			_ = files.Close()
		} else {
			err = fmt.Errorf("--root: %w", err)
		}
	}
	if err == nil {
		err = clusterd.Check(cfg.opts)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd check: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "configuration ok")
	return 0
}

func serve(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServe(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usage)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd: %v (see clusterd --help)\n", err)
		return 2
	}
	app, closeApp, err := newApp(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return 1
	}
	defer closeApp()
	return runApp(cfg, app, stderr)
}

// newApp returns what each worker serves: the files below --root, or the
// demo app; and what to release when the process is done.
func newApp(cfg serveConfig) (func(*worker.Worker) httpcore.Handler, func(), error) {
	if cfg.root == "" {
		return demoApp, func() {}, nil
	}
	files, err := static.New(cfg.root)
	if err != nil {
		return nil, nil, fmt.Errorf("--root: %w", err)
	}
	return func(*worker.Worker) httpcore.Handler { return files }, func() { _ = files.Close() }, nil
}

// runApp runs the master, or in a worker serves app, and returns the exit code.
func runApp(cfg serveConfig, app func(*worker.Worker) httpcore.Handler, stderr io.Writer) int {
	run := func() error { return clusterd.RunFunc(cfg.opts, app) }
	if cfg.h2c { // the demo app through the net/http adapter, which speaks h2c
		cfg.opts.H2C = true
		run = func() error { return clusterd.RunHTTPFunc(cfg.opts, demoHTTP) }
	}
	if err := run(); err != nil {
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return 1
	}
	return 0
}
