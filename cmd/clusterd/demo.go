package main

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/worker"
)

// maxDelayMS bounds /delay?ms=N so a client cannot park requests for long.
const maxDelayMS = 60000

// demoApp is the built-in app served by worker self when no --root is
// given. Every route runs on the event loop and never blocks it.
func demoApp(self *worker.Worker) httpcore.Handler {
	return httpcore.HandlerFunc(func(w *httpcore.ResponseWriter, r *httpcore.Request) {
		demoRoute(self, w, r.Method(), r.Path(), func() { echo(w, r) }, func() { delay(w, r) })
	})
}

// A demoResponse is what the demo's routes need of a response, as
// httpcore.ResponseWriter has it and httpReply gives net/http's.
type demoResponse interface {
	SetHeader(name, value string)
	WriteHeader(code int)
	Write(b []byte) (int, error)
}

var helloWorld = []byte("Hello World\n")

// demoRoute answers a request for path with the demo's routes, in either
// API: echo and delay, whose work differs between the two, are passed in.
func demoRoute(self *worker.Worker, w demoResponse, method, path string, echo, delay func()) {
	switch path {
	case "/":
		if allowGet(w, method) {
			w.SetHeader("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(helloWorld)
		}
	case "/echo":
		echo()
	case "/worker":
		if allowGet(w, method) {
			info := self.Info()
			writeJSON(w, 200, map[string]any{
				"id": info.ID, "pid": info.PID, "generation": info.Generation,
				"requests": self.Requests(),
			})
		}
	case "/delay":
		if allowGet(w, method) {
			delay()
		}
	default:
		writeJSON(w, 404, map[string]string{"error": "not found"})
	}
}

func allowGet(w demoResponse, method string) bool {
	if method == "GET" || method == "HEAD" {
		return true
	}
	w.SetHeader("Allow", "GET, HEAD")
	writeJSON(w, 405, map[string]string{"error": "method not allowed"})
	return false
}

// delay answers after ms milliseconds from a timer, leaving the loop free.
func delay(w *httpcore.ResponseWriter, r *httpcore.Request) {
	ms, ok := parseDelay(r.Query("ms"))
	if !ok {
		writeDelayError(w)
		return
	}
	w.Async()
	time.AfterFunc(time.Duration(ms)*time.Millisecond, func() {
		w.SetHeader("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.WriteString("waited " + strconv.Itoa(ms) + "ms\n")
		w.End()
	})
}

// parseDelay reads /delay's ms: decimal digits only, 0 to maxDelayMS.
// It stops counting past maxDelayMS, so no number overflows.
func parseDelay(s string) (int, bool) {
	ms := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		if ms = 10*ms + int(s[i]-'0'); ms > maxDelayMS {
			return 0, false
		}
	}
	return ms, s != ""
}

func writeDelayError(w demoResponse) {
	writeJSON(w, 400, map[string]string{"error": "ms must be an integer from 0 to " + strconv.Itoa(maxDelayMS)})
}

func writeJSON(w demoResponse, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = 500, []byte(`{"error":"encoding failed"}`)
	}
	w.SetHeader("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
