package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/clusterd/clusterd/worker"
)

// demoHTTP is the demo app as a net/http Handler, served with --h2c: the
// same routes and replies as demoApp, over HTTP/1.1 and HTTP/2.
func demoHTTP(self *worker.Worker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			if allowGetHTTP(w, r) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				_, _ = io.WriteString(w, "Hello World\n")
			}
		case "/echo":
			echoHTTP(w, r)
		case "/worker":
			if allowGetHTTP(w, r) {
				info := self.Info()
				writeJSONHTTP(w, 200, map[string]any{
					"id": info.ID, "pid": info.PID, "generation": info.Generation,
					"requests": self.Requests(),
				})
			}
		case "/delay":
			if allowGetHTTP(w, r) {
				delayHTTP(w, r)
			}
		default:
			writeJSONHTTP(w, 404, map[string]string{"error": "not found"})
		}
	})
}

func allowGetHTTP(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == "GET" || r.Method == "HEAD" {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD")
	writeJSONHTTP(w, 405, map[string]string{"error": "method not allowed"})
	return false
}

// echoHTTP answers with the request as JSON, as echo does.
func echoHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSONHTTP(w, 413, map[string]string{"error": err.Error()})
		return
	}
	headers := map[string]string{"Host": r.Host}
	for name, values := range r.Header {
		headers[name] = strings.Join(values, ", ")
	}
	writeJSONHTTP(w, 200, map[string]any{
		"method": r.Method, "url": r.RequestURI, "headers": headers, "body": string(body),
	})
}

func delayHTTP(w http.ResponseWriter, r *http.Request) {
	ms, ok := parseDelay(r.URL.Query().Get("ms"))
	if !ok {
		writeJSONHTTP(w, 400, map[string]string{"error": "ms must be an integer from 0 to " + strconv.Itoa(maxDelayMS)})
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "waited "+strconv.Itoa(ms)+"ms\n")
}

func writeJSONHTTP(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = 500, []byte(`{"error":"encoding failed"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
