package httpcore

import (
	"errors"
	"io"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// A Codec transforms the bytes of a connection between its socket and the
// loop, such as a TLS session whose handshake is done (see ConnInfo.Codec):
// the loop reads and writes the socket itself, from its own goroutine, and
// parses and answers the decoded bytes, so the connection costs no
// goroutine and no copy through another socket. Native handlers, SendFile
// (read and encoded instead of sendfile(2)), streamed bodies and Hijack work
// as on any connection.
//
// The loop calls Decode and Encode on its goroutine, one call at a time;
// neither may block.
type Codec interface {
	// Decode appends to dst what in, bytes read from the socket, decodes
	// to, and returns the extended slice. It keeps an incomplete tail of in
	// for the next call. It is called once with no input as the connection
	// is adopted, for bytes the codec took in before. io.EOF ends the
	// client's input (after the bytes returned); another error closes the
	// connection.
	Decode(dst, in []byte) ([]byte, error)
	// Encode appends the encoding of p to dst and returns the extended
	// slice. An error closes the connection.
	Encode(dst, p []byte) ([]byte, error)
	// End appends to dst what tells the peer that the output ends (a TLS
	// close_notify alert) and returns the extended slice. The loop sends
	// it, if the socket takes it at once, before it shuts down the
	// connection after a last response.
	End(dst []byte) []byte
	// Hijack returns a net.Conn that reads and writes decoded bytes
	// through nc, the socket, for ResponseWriter.Hijack. It is called off
	// the loop, after every byte the loop encoded has been written to nc;
	// the loop calls the Codec no more.
	Hijack(nc net.Conn) net.Conn
}

// codecState is the encoding side of a connection with a Codec: output is
// encoded as it is flushed, and what the socket did not take waits in enc.
type codecState struct {
	codec  Codec
	enc    []byte // encoded output; enc[encOff:] is not written yet; nil when empty
	encOff int
}

// codecReadSize is how much ciphertext one read takes: what it decodes
// to, with a record held over from before, fits the shared read buffer.
const codecReadSize = readBufferSize - 20<<10

// codecFileChunk is how much of a file body is read and encoded at a time:
// encoded, it still fits a pooled output buffer.
const codecFileChunk = outPoolSize - 1<<10

// adoptCodecConn serves fd like adoptConn, through codec, and decodes what
// codec holds already.
func (l *loop) adoptCodecConn(fd int, info ConnInfo) {
	l.adoptConn(fd, info)
	if fd >= len(l.conns) || l.conns[fd] == nil {
		return // refused (draining) or failed; fd is closed
	}
	c := l.conns[fd]
	c.x = &codecState{codec: info.Codec}
	if l.cbuf == nil {
		l.cbuf = make([]byte, codecReadSize)
	}
	l.decodeInput(c, nil)
}

// readDecoded is onReadable for a connection with a Codec: one read of
// encoded bytes, decoded and served.
func (l *loop) readDecoded(c *conn) {
	if len(c.in) >= l.lim.maxInput { // as readSpace: unreachable while the parser keeps its limits
		l.reject(c, errBodyTooLarge)
		l.process(c)
		return
	}
	n := l.readSocket(c, l.cbuf)
	if n == 0 {
		return
	}
	l.decodeInput(c, l.cbuf[:n])
}

// decodeInput decodes in and serves what it decodes to.
func (l *loop) decodeInput(c *conn, in []byte) {
	inConn := len(c.in) > 0
	dst := l.rbuf[:0]
	if inConn {
		dst = c.in
	}
	data, err := c.x.codec.Decode(dst, in)
	if len(data) > len(dst) {
		c.flags &^= connNeedInput
		if inConn {
			c.in = data
		}
		l.keepInput(c, data, l.consume(c, data))
	}
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		c.flags |= connPeerEOF
		l.clientGone(c)
	default:
		if l.debug {
			l.log.Debug("cannot decode input", "error", err, "remote", c.peer)
		}
		l.closeConn(c)
		return
	}
	l.process(c)
}

// encodeOut moves c.out, encoded, to c.x.enc. It reports false if it had
// to close c.
func (l *loop) encodeOut(c *conn) bool {
	if c.outOff == len(c.out) {
		return true
	}
	if !l.encode(c, c.out[c.outOff:]) {
		return false
	}
	l.releaseOut(c)
	return true
}

// encode appends p, encoded, to c.x.enc. It reports false if it had to
// close c.
func (l *loop) encode(c *conn, p []byte) bool {
	x := c.x
	if x.enc == nil {
		x.enc = l.outPool.get(len(p) + 256)
	}
	enc, err := x.codec.Encode(x.enc, p)
	if err != nil {
		if l.debug {
			l.log.Debug("cannot encode output", "error", err, "remote", c.peer)
		}
		l.closeConn(c)
		return false
	}
	x.enc = enc
	return true
}

// writeEncoded is writeOut for a connection with a Codec: c.out is encoded
// and written until done or EAGAIN. It reports false if it had to close c.
func (l *loop) writeEncoded(c *conn) bool {
	if !l.encodeOut(c) {
		return false
	}
	x := c.x
	if !l.writeFrom(c, x.enc, &x.encOff) {
		return false
	}
	if x.encOff >= len(x.enc) {
		l.releaseEnc(c)
	}
	return true
}

// releaseEnc returns the written encoded output's buffer: an idle
// connection holds none.
func (l *loop) releaseEnc(c *conn) {
	if x := c.x; x != nil && x.enc != nil {
		l.outPool.put(x.enc)
		x.enc, x.encOff = nil, 0
	}
}

// writeFileEncoded is writeFile for a connection with a Codec: the file is
// read and encoded a chunk at a time, each written before the next is read.
func (l *loop) writeFileEncoded(c *conn) bool {
	fo := c.file
	for sent := int64(0); fo.left > 0 && sent < maxSendfileBatch && c.bufferedOut() == 0; {
		chunk := l.cbuf[:min(codecFileChunk, fo.left)]
		var n int
		var err error
		cerr := fo.rc.Control(func(fd uintptr) { n, err = unix.Pread(int(fd), chunk, fo.off) })
		if err == unix.EINTR {
			continue
		}
		if cerr != nil || err != nil || n == 0 {
			if l.debug {
				l.log.Debug("file read failed", "error", os.NewSyscallError("pread", err), "file", fo.f.Name())
			}
			l.closeConn(c)
			return false
		}
		fo.off += int64(n)
		fo.left -= int64(n)
		sent += int64(n)
		if !l.encode(c, chunk[:n]) || !l.writeEncoded(c) {
			return false
		}
	}
	if fo.left == 0 {
		c.file = nil
		fo.close()
	}
	return true
}

// sendEnd sends what ends c's encoded output, if the socket takes it whole
// at once.
func (l *loop) sendEnd(c *conn) {
	end := c.x.codec.End(l.cbuf[:0])
	if n, err := unix.Write(c.fd, end); err == nil {
		l.st.BytesOut += uint64(n)
	}
}
