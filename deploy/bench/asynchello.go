//go:build ignore

// A native "Hello World" handler (text/plain, as nethttp.go's) served by
// clusterd.Run with -workers workers, that answers either at once, on the
// loop (-async=false), or the way RunHTTP's adapter does (-async): the
// response goes asynchronous and is made by work queued with RunInline,
// on the loop's goroutine. Beside nethttp.go's RunHTTP (ASYNC=1
// deploy/bench/nethttp.sh) it splits what RunHTTP costs over the native
// handler into the asynchronous path and net/http's objects.
// Run: go run asynchello.go -addr ... [-workers N] [-async]
package main

import (
	"flag"
	"log"

	"github.com/clusterd/clusterd"
	"github.com/clusterd/clusterd/httpcore"
)

var hello = []byte("Hello World\n")

type handler struct{ async bool }

func (h handler) ServeHTTP(w *httpcore.ResponseWriter, r *httpcore.Request) {
	w.SetHeader("Content-Type", "text/plain")
	if !h.async {
		_, _ = w.Write(hello)
		return
	}
	w.Async()
	respond := func() {
		_, _ = w.Write(hello)
		w.End()
	}
	if !w.RunInline(respond) {
		go respond()
	}
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8087", "listen address")
	workers := flag.Int("workers", 2, "workers")
	async := flag.Bool("async", true, "answer asynchronously, from RunInline work")
	flag.Parse()
	opts := clusterd.Options{Listen: []string{*addr}, Workers: *workers, LogLevel: "warn"}
	if err := clusterd.Run(opts, handler{async: *async}); err != nil {
		log.Fatal(err)
	}
}
