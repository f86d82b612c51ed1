//go:build ignore

// The net/http hello handler of the benchmarks, "Hello World\n" on every
// path, served by Go's net/http (one process, a goroutine per connection;
// -h2c adds HTTP/2 over cleartext TCP) or, with -workers N, by
// clusterd.RunHTTP: a master and N workers, each running the handler
// through the net/http adapter. Run: go run nethttp.go -addr ... [-workers N]
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/clusterd/clusterd"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	h2c := flag.Bool("h2c", false, "serve HTTP/2 over cleartext TCP too (net/http only)")
	workers := flag.Int("workers", 0, "serve with clusterd.RunHTTP and this many workers (0: net/http alone)")
	flag.Parse()
	hello := []byte("Hello World\n")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(hello)
	})
	if *workers > 0 {
		if *h2c {
			log.Fatal("-h2c goes with net/http alone, not with -workers")
		}
		opts := clusterd.Options{Listen: []string{*addr}, Workers: *workers, LogLevel: "warn"}
		log.Fatal(clusterd.RunHTTP(opts, handler))
	}
	srv := &http.Server{Addr: *addr, Handler: handler}
	if *h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	log.Fatal(srv.ListenAndServe())
}
