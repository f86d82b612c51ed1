//go:build ignore

// Go net/http peer for the benchmarks: one process, a goroutine per
// connection, "Hello World\n" on every path. Run: go run nethttp.go -addr ...
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	flag.Parse()
	hello := []byte("Hello World\n")
	log.Fatal(http.ListenAndServe(*addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(hello)
	})))
}
