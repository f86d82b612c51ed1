// The fasthttp peer of deploy/bench/nethttp.sh: "Hello World\n" on every
// path with Content-Type text/plain (and, like net/http, a Date header and
// no Server header), served through fasthttp's own API (its
// RequestCtx, not net/http's Handler) in one process; the script sets
// GOMAXPROCS. It is a module of its own so that the library's go.mod does
// not name fasthttp. Run: go run . -addr 127.0.0.1:8184
package main

import (
	"flag"
	"log"

	"github.com/valyala/fasthttp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8184", "listen address")
	flag.Parse()
	hello := []byte("Hello World\n")
	srv := &fasthttp.Server{
		Handler: func(ctx *fasthttp.RequestCtx) {
			ctx.SetContentType("text/plain")
			ctx.SetBody(hello)
		},
		// net/http and RunHTTP send no Server header: the same bytes.
		NoDefaultServerHeader: true,
	}
	log.Fatal(srv.ListenAndServe(*addr))
}
