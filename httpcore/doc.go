// Package httpcore is clusterd's event-loop HTTP/1.1 engine for Linux.
//
// A Server runs one epoll event loop, started on the goroutine that calls
// Serve. The
// loop accepts connections from listening sockets it is given (or is handed
// accepted ones with ServeConn), reads them into
// a shared per-loop buffer, parses requests in place without allocating,
// calls the Handler on the loop goroutine and writes responses back, all
// without a goroutine per connection. Timeouts come from one timer heap per
// loop and the Date header from a cache the loop refreshes once a second.
// With GOMAXPROCS 1 the loop sleeps by parking its goroutine on the epoll
// descriptor in the Go runtime's netpoller, not by blocking its thread, so
// other goroutines (asynchronous handlers, their I/O) run on the one
// processor meanwhile; with more it blocks in epoll_wait.
//
// # Memory
//
// An idle keep-alive connection holds only its conn struct (about 200 bytes):
// input is read into the loop's shared buffer and only the unparsed tail of a
// partial request is copied into a pooled per-connection buffer; output lives
// in a pooled buffer that is returned once it has been written out.
//
// Output is bounded too. Above 256 KiB of unwritten output a connection is
// not read, so pipelined requests cannot pile up responses; a response
// streamed from another goroutine makes its writer wait above the same
// mark (see ResponseWriter), and a file body is sent with sendfile(2)
// straight from the page cache. A slow reader of a 100 MB response thus
// holds a few hundred KiB of the server's memory, not 100 MB.
//
// A connection handed over with ConnInfo.Codec (a TLS session, say) is read
// and written by the loop like any other, its bytes decoded and encoded by
// the Codec on the loop goroutine; see Codec.
//
// # Handlers
//
// Handlers run on the loop and must not block. A handler that needs to wait
// calls ResponseWriter.Async, returns, and later calls ResponseWriter.End from
// any goroutine; responses on a connection always go out in request order.
// A Request, its strings and its body point into the loop's buffers and are
// valid only until ServeHTTP returns: copy (strings.Clone, bytes.Clone) what
// must outlive it, in particular in asynchronous handlers.
//
// Packages built on the engine use its documented extension API (see
// StreamingHandler, Body, ResponseWriter.Hijack): clusterd's nethttp
// package serves any standard net/http Handler that way, with streamed
// request and response bodies: on the loop's goroutine between batches of
// events when GOMAXPROCS is 1, the loop moving to a standby goroutine if
// the handler blocks (ResponseWriter.RunInline), or on a bounded pool of
// goroutines beside the loop. It is a ReusingHandler: the writers of its
// asynchronous responses are reused rather than allocated per request.
//
// # Protocol
//
// Parsing follows RFC 9112 strictly: anything ambiguous (bare LF, obs-fold,
// Transfer-Encoding with Content-Length, conflicting Content-Length, a missing
// or repeated Host, ...) is answered with a 4xx or 5xx status and the
// connection is closed; the rest of its input is never parsed as another
// request. Request bodies (Content-Length or chunked) are bounded by
// Config.MaxBodyBytes; a native Handler gets them whole, read before it
// runs, while a StreamingHandler reads them as they arrive. Responses have a
// Content-Length when the whole body is known, and are otherwise chunked
// (HTTP/1.1) or delimited by closing the connection (HTTP/1.0).
//
// The package builds on Linux only (epoll, eventfd, accept4).
package httpcore
