package httpcore

// A Handler answers requests on the loop goroutine. ServeHTTP must not
// block: a handler that has to wait calls w.Async and finishes with w.End
// from another goroutine. The Request is valid only until ServeHTTP returns.
//
// A panic in ServeHTTP is recovered and logged; the client gets a 500 and
// the connection is closed.
type Handler interface {
	ServeHTTP(w *ResponseWriter, r *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *ResponseWriter, r *Request)

// ServeHTTP calls f(w, r).
func (f HandlerFunc) ServeHTTP(w *ResponseWriter, r *Request) { f(w, r) }
