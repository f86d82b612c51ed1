//go:build ignore

// Go net/http peer for the benchmarks: one process, a goroutine per
// connection, "Hello World\n" on every path; -h2c adds HTTP/2 over
// cleartext TCP. Run: go run nethttp.go -addr ...
package main

import (
	"flag"
	"log"
	"net/http"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8083", "listen address")
	h2c := flag.Bool("h2c", false, "serve HTTP/2 over cleartext TCP too")
	flag.Parse()
	hello := []byte("Hello World\n")
	srv := &http.Server{Addr: *addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(hello)
	})}
	if *h2c {
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	log.Fatal(srv.ListenAndServe())
}
