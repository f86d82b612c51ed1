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
)

// wrapApp lets the tests add routes (a handler that blocks its loop, say);
// nil in the product.
var wrapApp func(httpcore.Handler) httpcore.Handler

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
		case "serve", "ctl", "version", "help":
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
	}
	return serve(args, stdout, stderr)
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
	h := demoApp()
	if cfg.root != "" {
		files, err := static.New(cfg.root)
		if err != nil {
			fmt.Fprintf(stderr, "clusterd: --root: %v\n", err)
			return 1
		}
		defer files.Close()
		h = files
	}
	if wrapApp != nil {
		h = wrapApp(h)
	}
	if cfg.h2c {
		cfg.opts.H2C = true
		err = clusterd.RunHTTP(cfg.opts, demoHTTP())
	} else {
		err = clusterd.Run(cfg.opts, h)
	}
	if err != nil {
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return 1
	}
	return 0
}
