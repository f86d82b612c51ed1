package static

import (
	"mime"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
)

// serveFile answers with f (which it closes): 304 when the client's copy
// is current, 206 for a satisfiable single range, 416 for an unsatisfiable
// one, else 200 with the whole file.
func serveFile(w *httpcore.ResponseWriter, r *httpcore.Request, f *os.File, st *unix.Stat_t, name string) {
	size := st.Size
	mod := time.Unix(st.Mtim.Unix()).UTC().Truncate(time.Second)
	etag := `"` + strconv.FormatInt(st.Mtim.Nano(), 16) + "-" + strconv.FormatInt(size, 16) + `"`
	w.SetHeader("ETag", etag)
	w.SetHeader("Last-Modified", mod.Format(http.TimeFormat))
	w.SetHeader("Accept-Ranges", "bytes")
	if notModified(r, etag, mod) {
		_ = f.Close()
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.SetHeader("Content-Type", contentType(name))
	off, n := int64(0), size
	if rng := r.Header("Range"); rng != "" && ifRange(r, etag, mod) {
		start, end, ok := parseRange(rng, size)
		switch {
		case !ok:
			// A malformed or multi-range header is ignored (RFC 9110 §14.2).
		case start < 0:
			_ = f.Close()
			w.SetHeader("Content-Range", "bytes */"+strconv.FormatInt(size, 10))
			fail(w, http.StatusRequestedRangeNotSatisfiable)
			return
		default:
			off, n = start, end-start+1
			w.SetHeader("Content-Range", "bytes "+strconv.FormatInt(start, 10)+"-"+
				strconv.FormatInt(end, 10)+"/"+strconv.FormatInt(size, 10))
			w.WriteHeader(http.StatusPartialContent)
		}
	}
	_ = w.SendFile(f, off, n) // it owns f now, and closes it even on error
}

// notModified evaluates If-None-Match, or else If-Modified-Since (RFC 9110 §13.2.2).
func notModified(r *httpcore.Request, etag string, mod time.Time) bool {
	if inm := r.Header("If-None-Match"); inm != "" {
		return etagMatch(inm, etag, true)
	}
	ims := r.Header("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	return err == nil && !mod.After(t)
}

// ifRange reports whether a Range header applies: there is no If-Range, or
// it names the current representation (strong comparison for ETags).
func ifRange(r *httpcore.Request, etag string, mod time.Time) bool {
	ir := r.Header("If-Range")
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) || strings.HasPrefix(ir, "W/") {
		return etagMatch(ir, etag, false)
	}
	t, err := http.ParseTime(ir)
	return err == nil && t.Equal(mod)
}

// etagMatch reports whether list (an If-None-Match or If-Range value)
// names etag; weak comparison ignores a W/ prefix.
func etagMatch(list, etag string, weak bool) bool {
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		if tag == "*" && weak {
			return true
		}
		if weak {
			tag = strings.TrimPrefix(tag, "W/")
		}
		if tag == etag {
			return true
		}
	}
	return false
}

// parseRange reads a single "bytes=" range against size. ok is false for a
// header to ignore; start < 0 means unsatisfiable.
func parseRange(h string, size int64) (start, end int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 || !digits(last) {
			return 0, 0, false
		}
		if n == 0 || size == 0 {
			return -1, 0, true
		}
		return max(size-n, 0), size - 1, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || !digits(first) {
		return 0, 0, false
	}
	e := size - 1
	if last != "" {
		if e, err = strconv.ParseInt(last, 10, 64); err != nil || !digits(last) || e < s {
			return 0, 0, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return -1, 0, true
	}
	return s, e, true
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// contentType names the file's type by its extension.
func contentType(name string) string {
	if name == "." || strings.HasSuffix(name, "/") {
		return "text/html; charset=utf-8" // a directory's index.html
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}
