// Package examplemain is what every example's main shares: the flags it
// takes and the call that serves its handler under clusterd.
package examplemain

import (
	"flag"
	"log"
	"net/http"

	"github.com/clusterd/clusterd"
)

// Flags parses the flags every example takes, --listen and --workers, and
// returns the options they say.
func Flags() clusterd.Options {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve (port 0: any free port, logged)")
	workers := flag.Int("workers", 2, "worker processes")
	flag.Parse()
	return clusterd.Options{Listen: []string{*listen}, Workers: *workers}
}

// Serve serves h under opts with clusterd.RunHTTP: a master and its
// workers, each running h from its own event loop. It exits the program
// if clusterd.RunHTTP fails.
func Serve(opts clusterd.Options, h http.Handler) {
	if err := clusterd.RunHTTP(opts, h); err != nil {
		log.Fatal(err)
	}
}
