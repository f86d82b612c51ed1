// Package static serves the files below a directory from an httpcore event
// loop: GET and HEAD, index.html for directories, MIME types by extension,
// ETag and Last-Modified with 304, single byte ranges (206, 416), and bodies
// sent with sendfile(2). No request can reach outside the directory: ".."
// segments and encoded slashes are refused, and files are opened with
// openat2(RESOLVE_BENEATH), so the kernel itself refuses a symlink that
// points outside.
//
// Opening and stat-ing a file are blocking system calls made on the loop, as
// nginx does by default; they are fast on a local file system.
package static

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/httpcore"
	"github.com/clusterd/clusterd/internal/rawfd"
)

// IndexFile is served for a request naming a directory.
const IndexFile = "index.html"

// Handler serves the files below one directory.
type Handler struct {
	dir   *os.File // the root, opened once; files are opened beneath it
	dirFD int      // dir's descriptor
	name  string
}

// New returns a Handler for dir, which must be a readable directory.
func New(dir string) (*Handler, error) {
	f, err := os.OpenFile(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("static root: %w", err)
	}
	fd, err := rawfd.Of(f)
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("static root: %w", err)
	}
	return &Handler{dir: f, dirFD: fd, name: dir}, nil
}

// Close releases the directory.
func (h *Handler) Close() error { return h.dir.Close() }

// ServeHTTP answers GET and HEAD with the named file.
func (h *Handler) ServeHTTP(w *httpcore.ResponseWriter, r *httpcore.Request) {
	if m := r.Method(); m != "GET" && m != "HEAD" {
		w.SetHeader("Allow", "GET, HEAD")
		fail(w, http.StatusMethodNotAllowed)
		return
	}
	rel, code := cleanPath(r.Path())
	if code != 0 {
		fail(w, code)
		return
	}
	f, st, code := h.open(rel)
	if code == http.StatusMovedPermanently {
		w.SetHeader("Location", dirLocation(rel, r.RawQuery()))
		fail(w, code)
		return
	}
	if code != 0 {
		fail(w, code)
		return
	}
	serveFile(w, r, f, st, rel)
}

// dirLocation is where a directory named without its trailing slash is
// redirected: a path on this site built from rel, the directory below the
// root, cleaned and escaped, so it starts with exactly one "/" (never
// "//host" or "/\host", which browsers take for another site); the
// query is kept.
func dirLocation(rel, rawQuery string) string {
	loc := (&url.URL{Path: path.Clean("/"+rel) + "/"}).EscapedPath()
	if rawQuery != "" {
		loc += "?" + rawQuery
	}
	return loc
}

// cleanPath turns a request path into a path relative to the root, or
// says why it cannot be served. The path keeps a trailing slash if it had one.
func cleanPath(p string) (string, int) {
	if !strings.HasPrefix(p, "/") {
		return "", http.StatusBadRequest
	}
	dec, err := unescape(p)
	if err != nil {
		return "", http.StatusBadRequest
	}
	if dec == "" { // an encoded slash or backslash, or a NUL
		return "", http.StatusForbidden
	}
	for _, seg := range strings.Split(dec, "/") {
		if seg == ".." {
			return "", http.StatusForbidden
		}
	}
	rel := strings.TrimLeft(dec, "/")
	if rel == "" {
		rel = "."
	}
	return rel, 0
}

// unescape decodes %XX escapes; it returns "" with no error for an escape
// that would change the path's structure (%2F, %5C, %00).
func unescape(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if p[i] != '%' {
			b.WriteByte(p[i])
			continue
		}
		if i+2 >= len(p) || unhex(p[i+1]) < 0 || unhex(p[i+2]) < 0 {
			return "", errors.New("bad escape")
		}
		c := byte(unhex(p[i+1])<<4 | unhex(p[i+2]))
		if c == '/' || c == '\\' || c == 0 {
			return "", nil
		}
		b.WriteByte(c)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c - 'a' + 10)
	case 'A' <= c && c <= 'F':
		return int(c - 'A' + 10)
	}
	return -1
}

// open opens rel beneath the root: the file itself, or a directory's
// index. It answers 301 for a directory named without its trailing slash.
func (h *Handler) open(rel string) (*os.File, *unix.Stat_t, int) {
	f, st, err := h.openBeneath(rel)
	if err != nil {
		return nil, nil, errorCode(err)
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		_ = f.Close()
		if rel != "." && !strings.HasSuffix(rel, "/") {
			return nil, nil, http.StatusMovedPermanently
		}
		if f, st, err = h.openBeneath(strings.TrimSuffix(rel, "/") + "/" + IndexFile); err != nil {
			return nil, nil, errorCode(err)
		}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = f.Close()
		return nil, nil, http.StatusNotFound
	}
	return f, st, 0
}

// openBeneath opens rel with the kernel refusing any resolution that leaves
// the root, symlinks included. O_NONBLOCK keeps a FIFO from blocking the loop.
func (h *Handler) openBeneath(rel string) (*os.File, *unix.Stat_t, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	}
	var fd int
	var err error
	for {
		fd, err = unix.Openat2(h.dirFD, rel, how)
		if err != unix.EINTR && err != unix.EAGAIN {
			break
		}
	}
	if err != nil {
		return nil, nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return nil, nil, err
	}
	return os.NewFile(uintptr(fd), rel), &st, nil
}

// errorCode maps an open error to a status: escapes and missing files are
// 404 (nothing outside the root is revealed), permissions 403.
func errorCode(err error) int {
	switch {
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return http.StatusForbidden
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EXDEV),
		errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENAMETOOLONG):
		return http.StatusNotFound
	}
	return http.StatusInternalServerError
}

func fail(w *httpcore.ResponseWriter, code int) {
	w.SetHeader("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.WriteString(http.StatusText(code) + "\n")
}
