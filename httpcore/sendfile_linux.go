package httpcore

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxSendfileBatch bounds the bytes one wakeup sends from a file, so a fast
// client of a large file does not hold up the other connections of the loop.
const maxSendfileBatch = 4 << 20

// A fileOut is a response body sent from a file with sendfile(2), after the
// connection's buffered output.
type fileOut struct {
	f    *os.File
	rc   syscall.RawConn // f's descriptor, without making it blocking (as Fd would)
	off  int64           // next byte of f to send
	left int64           // bytes still to send
}

func newFileOut(f *os.File, offset, n int64) (*fileOut, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("httpcore: SendFile %s: %w", f.Name(), err)
	}
	return &fileOut{f: f, rc: rc, off: offset, left: n}, nil
}

func (fo *fileOut) close() { _ = fo.f.Close() }

// send sends up to limit bytes to the socket fd with one sendfile call.
func (fo *fileOut) send(fd int, limit int64) (int, error) {
	var n int
	var err error
	cerr := fo.rc.Control(func(src uintptr) {
		n, err = unix.Sendfile(fd, int(src), &fo.off, int(min(fo.left, limit)))
	})
	if cerr != nil {
		return 0, cerr
	}
	if n > 0 {
		fo.left -= int64(n)
	}
	return n, err
}

// writeFile sends c's file body until it is done, the socket is full or
// maxSendfileBatch bytes went out. It reports false if it had to close c:
// on an error, or if the file ended early (the client would wait forever for
// the rest).
func (l *loop) writeFile(c *conn) bool {
	if c.x != nil {
		return l.writeFileEncoded(c)
	}
	fo := c.file
	for sent := int64(0); fo.left > 0 && sent < maxSendfileBatch; {
		n, err := fo.send(c.fd, maxSendfileBatch-sent)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return true
		case err != nil || n == 0:
			if err != nil && l.debug {
				l.log.Debug("sendfile failed", "error", os.NewSyscallError("sendfile", err), "file", fo.f.Name())
			}
			l.closeConn(c)
			return false
		}
		sent += int64(n)
		c.lastWrite = l.now
		l.st.BytesOut += uint64(n)
	}
	if fo.left == 0 {
		c.file = nil
		fo.close()
	}
	return true
}
