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

// serve runs a master and its workers, which serve the demo app or the
// files under --root.
func serve(args []string, stdout, stderr io.Writer) int {
	return serveWith(args, stdout, stderr, nil)
}

// serveWith is serve with front, if not nil, in front of the app: a
// handler that answers what it knows and passes the rest on.
func serveWith(args []string, stdout, stderr io.Writer, front func(httpcore.Handler) httpcore.Handler) int {
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
	if front != nil {
		h = front(h)
	}
	if err := clusterd.Run(cfg.opts, h); err != nil {
		fmt.Fprintf(stderr, "clusterd: %v\n", err)
		return 1
	}
	return 0
}
