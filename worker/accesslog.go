package worker

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/clusterd/clusterd/httpcore"
)

// Access log formats.
const (
	AccessLogCommon = "common" // NCSA Common Log Format, as nginx and Apache write it
	AccessLogJSON   = "json"   // one JSON object per line
)

// Bounds of the access log's queue: lines wait in memory while the writer
// goroutine is busy; past maxPending bytes they are dropped and counted,
// so a slow disk never blocks the event loop nor grows memory without
// bound. pipeChunk is what one write to a pipe may carry without being
// interleaved with another process's (PIPE_BUF).
const (
	maxPending = 1 << 20
	pipeChunk  = 4096
)

// accessLog writes one line per response. Lines are formatted on the event
// loop into a queue; a goroutine of its own writes them out.
type accessLog struct {
	path   string // "-": standard output
	json   bool
	worker int
	log    hclog.Logger

	mu      sync.Mutex
	pending []byte
	dropped uint64

	kick   chan struct{} // there is something to write
	reopen chan struct{}
	stop   chan struct{}
	done   chan struct{}

	f    *os.File // the writer goroutine's
	pipe bool     // f is not a regular file: write whole lines of at most pipeChunk

	line    []byte // the loop's scratch
	stampAt int64  // the second stamp is for
	stamp   []byte
}

// CheckAccessLog reports a path the access log cannot be opened at, and a
// format that does not exist.
func CheckAccessLog(path, format string) error {
	if format != AccessLogCommon && format != AccessLogJSON {
		return fmt.Errorf("access log format must be %s or %s, got %q", AccessLogCommon, AccessLogJSON, format)
	}
	if path == "" || path == "-" {
		return nil
	}
	f, err := openLog(path)
	if err != nil {
		return err
	}
	return f.Close()
}

func openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("access log: %w", err)
	}
	return f, nil
}

// newAccessLog opens the access log and starts its writer.
func newAccessLog(path, format string, worker int, log hclog.Logger) (*accessLog, error) {
	if err := CheckAccessLog(path, format); err != nil {
		return nil, err
	}
	a := &accessLog{path: path, json: format == AccessLogJSON, worker: worker, log: log,
		kick: make(chan struct{}, 1), reopen: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	if err := a.open(); err != nil {
		return nil, err
	}
	go a.write()
	return a, nil
}

// open (re)opens the log's file; the old one, if any, is closed.
func (a *accessLog) open() error {
	f := os.Stdout
	if a.path != "-" {
		var err error
		if f, err = openLog(a.path); err != nil {
			return err
		}
	}
	fi, err := f.Stat()
	a.pipe = err != nil || !fi.Mode().IsRegular()
	if a.f != nil && a.f != os.Stdout {
		_ = a.f.Close()
	}
	a.f = f
	return nil
}

// Record formats the response on the loop and queues the line (a
// httpcore.Config.OnResponse).
func (a *accessLog) Record(r *httpcore.ResponseRecord) {
	if a.json {
		a.line = a.appendJSON(a.line[:0], r)
	} else {
		a.line = a.appendCommon(a.line[:0], r)
	}
	a.mu.Lock()
	if len(a.pending)+len(a.line) > maxPending {
		a.dropped++
		a.mu.Unlock()
		return
	}
	first := len(a.pending) == 0
	a.pending = append(a.pending, a.line...)
	a.mu.Unlock()
	if first {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// Dropped is how many lines were dropped because the queue was full.
func (a *accessLog) Dropped() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dropped
}

// Reopen makes the writer open the path anew (after logrotate renamed
// the file); lines not yet written go to the new file.
func (a *accessLog) Reopen() {
	select {
	case a.reopen <- struct{}{}:
	default:
	}
}

// Close writes what is queued and closes the file.
func (a *accessLog) Close() {
	close(a.stop)
	<-a.done
}

func (a *accessLog) write() {
	defer close(a.done)
	var spare []byte
	for {
		select {
		case <-a.kick:
		case <-a.reopen:
			if err := a.open(); err != nil {
				a.log.Error("cannot reopen the access log; writing on to the old file", "error", err)
			} else {
				a.log.Info("access log reopened", "path", a.path)
			}
		case <-a.stop:
			spare = a.flush(spare)
			if a.f != os.Stdout {
				_ = a.f.Close()
			}
			return
		}
		spare = a.flush(spare)
	}
}

// flush writes the queued lines and returns the emptied buffer to reuse.
func (a *accessLog) flush(spare []byte) []byte {
	a.mu.Lock()
	b := a.pending
	a.pending = spare[:0]
	a.mu.Unlock()
	if len(b) == 0 {
		return b
	}
	if err := a.writeOut(b); err != nil && !errors.Is(err, os.ErrClosed) {
		a.log.Warn("access log write failed", "error", err)
	}
	if cap(b) > maxPending {
		return nil
	}
	return b[:0]
}

// writeOut writes b, whole lines of at most pipeChunk at a time to a pipe
// (so that workers sharing standard output never split a line).
func (a *accessLog) writeOut(b []byte) error {
	if !a.pipe {
		_, err := a.f.Write(b)
		return err
	}
	return writeLines(a.f, b)
}

// writeLines writes b in whole lines of at most pipeChunk bytes per write
// (a longer line alone, in pieces).
func writeLines(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := len(b)
		if n > pipeChunk {
			n = lastLineEnd(b[:pipeChunk])
			if n == 0 {
				n = min(len(b), pipeChunk) // one line longer than a chunk
			}
		}
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func lastLineEnd(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '\n' {
			return i + 1
		}
	}
	return 0
}

// appendCommon appends r in the Common Log Format:
// host - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.1" 200 2326
func (a *accessLog) appendCommon(b []byte, r *httpcore.ResponseRecord) []byte {
	host := r.Remote
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		host = "-"
	}
	b = append(b, host...)
	b = append(b, " - - ["...)
	b = append(b, a.commonTime(r.Time)...)
	b = append(b, "] \""...)
	if len(r.RequestLine) == 0 {
		b = append(b, '-')
	}
	b = appendEscaped(b, r.RequestLine, false)
	b = append(b, "\" "...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, ' ')
	if r.BodyBytes > 0 {
		b = strconv.AppendInt(b, r.BodyBytes, 10)
	} else {
		b = append(b, '-')
	}
	return append(b, '\n')
}

// commonTime formats t as the Common Log Format does, once per second.
func (a *accessLog) commonTime(t time.Time) []byte {
	if s := t.Unix(); s != a.stampAt || a.stamp == nil {
		a.stampAt = s
		a.stamp = t.AppendFormat(a.stamp[:0], "02/Jan/2006:15:04:05 -0700")
	}
	return a.stamp
}

// appendJSON appends r as a JSON object:
// {"time":…,"remote":…,"request":…,"status":…,"bytes":…,"duration":…,"worker":…}
func (a *accessLog) appendJSON(b []byte, r *httpcore.ResponseRecord) []byte {
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	b = append(b, `","remote":"`...)
	b = appendEscaped(b, []byte(r.Remote), true)
	b = append(b, `","request":"`...)
	b = appendEscaped(b, r.RequestLine, true)
	b = append(b, `","status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, r.BodyBytes, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendFloat(b, r.Duration.Seconds(), 'f', -1, 64)
	b = append(b, `,"worker":`...)
	b = strconv.AppendInt(b, int64(a.worker), 10)
	return append(b, "}\n"...)
}

// appendEscaped appends s with '"', '\' and bytes outside printable ASCII
// escaped: \u00XX in JSON, \xXX in the Common Log Format (as nginx does).
func appendEscaped(b, s []byte, json bool) []byte {
	const hex = "0123456789abcdef"
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			if json {
				b = append(b, '\\', c)
			} else {
				b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			}
		case c < 0x20 || c >= 0x7f:
			if json {
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&15])
			} else {
				b = append(b, '\\', 'x', hex[c>>4], hex[c&15])
			}
		default:
			b = append(b, c)
		}
	}
	return b
}
