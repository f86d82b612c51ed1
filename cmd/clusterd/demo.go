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
		switch r.Path() {
		case "/":
			if !allowGet(w, r) {
				return
			}
			w.SetHeader("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.WriteString("Hello World\n")
		case "/echo":
			echo(w, r)
		case "/worker":
			if allowGet(w, r) {
				info := self.Info()
				writeJSON(w, 200, map[string]any{
					"id": info.ID, "pid": info.PID, "generation": info.Generation,
					"requests": self.Requests(),
				})
			}
		case "/delay":
			if allowGet(w, r) {
				delay(w, r)
			}
		default:
			writeJSON(w, 404, map[string]string{"error": "not found"})
		}
	})
}

func allowGet(w *httpcore.ResponseWriter, r *httpcore.Request) bool {
	if m := r.Method(); m == "GET" || m == "HEAD" {
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
		writeJSON(w, 400, map[string]string{"error": "ms must be an integer from 0 to " + strconv.Itoa(maxDelayMS)})
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

func writeJSON(w *httpcore.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code, body = 500, []byte(`{"error":"encoding failed"}`)
	}
	w.SetHeader("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}
