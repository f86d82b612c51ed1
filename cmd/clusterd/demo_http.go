package main

import (
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
		demoRoute(self, httpReply{w}, r.Method, r.URL.Path, func() { echoHTTP(w, r) }, func() { delayHTTP(w, r) })
	})
}

// httpReply is a net/http response as a demoResponse.
type httpReply struct{ http.ResponseWriter }

func (w httpReply) SetHeader(name, value string) { w.Header().Set(name, value) }

// echoHTTP answers with the request as JSON, as echo does.
func echoHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeJSON(httpReply{w}, 413, map[string]string{"error": err.Error()})
		return
	}
	headers := map[string]string{"Host": r.Host}
	for name, values := range r.Header {
		headers[name] = strings.Join(values, ", ")
	}
	writeJSON(httpReply{w}, 200, map[string]any{
		"method": r.Method, "url": r.RequestURI, "headers": headers, "body": string(body),
	})
}

func delayHTTP(w http.ResponseWriter, r *http.Request) {
	ms, ok := parseDelay(r.URL.Query().Get("ms"))
	if !ok {
		writeDelayError(httpReply{w})
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
