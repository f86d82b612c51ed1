//go:build ignore

// The net/http hello handler of nethttp.go, served by clusterd.RunHTTP:
// a master and N workers, each running the handler through the net/http
// adapter. Run: go run runhttp.go -addr ... -workers N
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/clusterd/clusterd"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8185", "listen address")
	workers := flag.Int("workers", 2, "worker processes")
	flag.Parse()
	hello := []byte("Hello World\n")
	opts := clusterd.Options{Listen: []string{*addr}, Workers: *workers, LogLevel: "warn"}
	log.Fatal(clusterd.RunHTTP(opts, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(hello)
	})))
}
