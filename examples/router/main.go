// Command router is an ordinary net/http program, built on the chi router,
// that runs unchanged under clusterd: one master process and N workers,
// each serving the router from its own event loop. The only clusterd line
// is the call to clusterd.RunHTTP in main.
//
//	go run ./examples/router --listen 127.0.0.1:8080 --workers 2
//
// Routes:
//
//	GET  /                   a greeting, as text
//	GET  /users/{id}         a user as JSON; id must be a number
//	POST /users/{id}/notes   reads the body and answers with it as JSON
//	GET  /stream?n=5         n lines, one every 50 ms, flushed as they are written
//	GET  /panic              a handler that panics: the middleware answers 500
//
// Every response says which worker process served it, and every request is
// logged to stderr, which the master forwards.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/clusterd/clusterd"
)

// maxNote bounds the body of POST /users/{id}/notes.
const maxNote = 64 << 10

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve (port 0: any free port, logged)")
	workers := flag.Int("workers", 2, "worker processes")
	flag.Parse()
	opts := clusterd.Options{Listen: []string{*listen}, Workers: *workers}
	if err := clusterd.RunHTTP(opts, newRouter(log.New(os.Stderr, "", 0))); err != nil {
		log.Fatal(err)
	}
}

func newRouter(logger *log.Logger) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.RequestID)
	r.Use(logRequests(logger))
	r.Use(middleware.Recoverer)
	r.Get("/", hello)
	r.Route("/users/{id}", func(r chi.Router) {
		r.Get("/", getUser)
		r.Post("/notes", postNote)
	})
	r.Get("/stream", stream)
	r.Get("/panic", func(http.ResponseWriter, *http.Request) { panic("something broke") })
	return r
}

// logRequests logs one line per request: method, path, status, bytes,
// duration and the worker's pid.
func logRequests(logger *log.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
			start := time.Now()
			defer func() {
				logger.Printf("pid=%d %s %s %d %dB %v", os.Getpid(), r.Method, r.URL.Path,
					ww.Status(), ww.BytesWritten(), time.Since(start).Round(time.Microsecond))
			}()
			next.ServeHTTP(ww, r)
		})
	}
}

func hello(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "hello from worker %d\n", os.Getpid())
}

func getUser(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(chi.URLParam(r, "id"))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "id must be a number"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "name": "user" + strconv.Itoa(id), "worker": os.Getpid()})
}

func postNote(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxNote))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "note too large"})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"user": chi.URLParam(r, "id"), "note": string(body), "bytes": len(body), "worker": os.Getpid(),
	})
}

// stream writes n lines, one every 50 ms, each flushed to the client at
// once; it stops early if the client goes away.
func stream(w http.ResponseWriter, r *http.Request) {
	n, err := strconv.Atoi(r.URL.Query().Get("n"))
	if err != nil || n < 1 || n > 100 {
		n = 5
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "line %d of %d from worker %d\n", i, n, os.Getpid())
		flusher.Flush()
		if i == n {
			break
		}
		select {
		case <-tick.C:
		case <-r.Context().Done():
			return
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
