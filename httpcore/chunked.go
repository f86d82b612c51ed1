package httpcore

import "bytes"

// Chunked request bodies (RFC 9112 7.1) are decoded by one incremental
// decoder, for both ways a body reaches a handler: buffered for a handler
// that takes it whole, its data moved together in place after the head as
// they arrive (scanChunked), or streamed through a pipe (bodyIn). It
// resumes where the previous input stopped. A line (chunk-size or trailer
// field) that arrives in pieces is parsed again only once a line feed has
// arrived after the part already scanned, or the line has crossed its
// limit, so a body trickled a byte per read costs linear time, like a
// trickled head.
type chunkDecoder struct {
	state   uint8
	scanned int32 // bytes of the current line scanned without a line feed
	fields  int32 // trailer fields so far
	tbytes  int32 // trailer section bytes so far
	left    int64 // data bytes left in the current chunk
	total   int64 // data bytes declared so far
	encoded int64 // body bytes used so far, framing included
}

// chunkDecoder states, in the order they come.
const (
	decSize    uint8 = iota // a chunk-size line
	decData                 // chunk data
	decDataEnd              // the CRLF after chunk data
	decTrailer              // trailer field lines, up to the empty line
	decDone                 // the body is complete
)

// decode decodes what it can of b, the body from where the previous call
// stopped, and returns how many bytes it used. Chunk data go to take,
// which returns how much of them it took, and trailer fields to field
// unless it is nil. The error is nil once the body is complete,
// errIncomplete when b ends first, errPipeFull when take took less than it
// was given, or a *protoError: the rules and limits are those of a head
// (strict hex sizes and extensions, a chunk-size line of at most
// maxChunkLine bytes, MaxBodyBytes of data, framing that may not outweigh
// the data, and trailers bounded like a head).
func (d *chunkDecoder) decode(b []byte, lim *limits, take func([]byte) int, field func(name, value []byte)) (int, error) {
	off := 0
	for d.state != decDone {
		if off == len(b) {
			return off, errIncomplete
		}
		n, err := d.step(b[off:], lim, take, field)
		off += n
		d.encoded += int64(n)
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

// step decodes the element at the start of b: a chunk-size line, data, the
// CRLF after data, or a trailer line. It returns the bytes it used.
func (d *chunkDecoder) step(b []byte, lim *limits, take func([]byte) int, field func(name, value []byte)) (int, error) {
	switch d.state {
	case decSize:
		return d.sizeLine(b, lim)
	case decData:
		k := int(min(int64(len(b)), d.left))
		n := take(b[:k])
		if d.left -= int64(n); d.left == 0 {
			d.state = decDataEnd
		}
		if n < k {
			return n, errPipeFull
		}
		return n, nil
	case decDataEnd:
		switch {
		case b[0] != '\r', len(b) > 1 && b[1] != '\n':
			return 0, errBadChunk
		case len(b) < 2:
			return 0, errIncomplete
		}
		d.state = decSize
		return 2, nil
	}
	return d.trailerLine(b, lim, field)
}

func (d *chunkDecoder) sizeLine(b []byte, lim *limits) (int, error) {
	if !d.lineMayEnd(b, maxChunkLine) {
		return 0, errIncomplete
	}
	size, data, err := parseChunkSize(b, 0, lim.maxBody-d.total)
	if err != nil {
		d.noteIncomplete(b, err)
		return 0, err
	}
	d.scanned = 0
	if size > 0 && d.encoded+int64(data)+size+2 > lim.maxChunked {
		return 0, errBodyTooLarge // framing may not outweigh the data
	}
	d.total += size
	d.left = size
	d.state = decData
	if size == 0 {
		d.state = decTrailer
	}
	return data, nil
}

// trailerLine reads one trailer field line, or the empty line that ends the
// body, within the head size limit.
func (d *chunkDecoder) trailerLine(b []byte, lim *limits, field func(name, value []byte)) (int, error) {
	room := lim.maxHeader - int(d.tbytes)
	tb := b[:min(len(b), room)]
	if len(tb) < room && !d.lineMayEnd(tb, room) {
		return 0, errIncomplete
	}
	n, err := d.parseTrailer(tb, lim, field)
	d.noteIncomplete(tb, err)
	switch {
	case err == errIncomplete && len(tb) == room:
		return 0, errTrailerTooLarge
	case err != nil:
		return 0, err
	}
	d.scanned = 0
	d.tbytes += int32(n)
	return n, nil
}

func (d *chunkDecoder) parseTrailer(b []byte, lim *limits, field func(name, value []byte)) (int, error) {
	if end, err := fieldsEnd(b, 0); end != 0 || err != nil {
		if end != 0 {
			d.state = decDone
		}
		return end, err
	}
	name, value, next, err := parseField(b, 0)
	if err != nil {
		return 0, err
	}
	if d.fields++; int(d.fields) > lim.maxFields {
		return 0, errTooManyFields
	}
	if field != nil {
		field(name, value)
	}
	return next, nil
}

// lineMayEnd reports whether the line at the start of b, at most limit
// bytes before its CRLF, may now be complete or invalid: a line feed
// arrived after the part scanned before, or the line is over its limit.
func (d *chunkDecoder) lineMayEnd(b []byte, limit int) bool {
	return len(b) > limit || int(d.scanned) < len(b) && bytes.IndexByte(b[d.scanned:], '\n') >= 0
}

// noteIncomplete records, after err from parsing the line at the start of
// b, how much of it was scanned.
func (d *chunkDecoder) noteIncomplete(b []byte, err error) {
	if err == errIncomplete {
		d.scanned = int32(len(b))
	}
}

// chunkScan is the progress of a chunked body buffered whole for its
// handler. Offsets are from the start of the request, so they stay right
// when the buffer moves.
type chunkScan struct {
	dec  chunkDecoder
	pos  int // the next byte to decode
	data int // end of the data moved together after the head
}

// scanChunked decodes the chunked body of the request at the start of b,
// whose head is headLen bytes, from where the previous call stopped,
// moving its data together after the head. It returns the length of the
// whole request, errIncomplete, or a *protoError.
func scanChunked(b []byte, headLen int, s *chunkScan, lim *limits) (int, error) {
	if s.pos == 0 {
		s.pos, s.data = headLen, headLen
	}
	n, err := s.dec.decode(b[s.pos:], lim, func(p []byte) int {
		s.data += copy(b[s.data:], p)
		return len(p)
	}, nil)
	s.pos += n
	if err != nil {
		return 0, err
	}
	return s.pos, nil
}

// trailer returns the offset of the trailer section of a body scanned to
// its end.
func (s *chunkScan) trailer() int { return s.pos - int(s.dec.tbytes) }

// parseChunkSize parses chunk-size [ chunk-ext ] CRLF at b[i:]: strict hex
// (no sign, no "0x", no whitespace), at most room, the extensions checked
// against their grammar and skipped, the line bounded by maxChunkLine
// bytes before its CRLF. It returns the size and the offset of the chunk
// data.
func parseChunkSize(b []byte, i int, room int64) (size int64, data int, err error) {
	start := i
	for ; i < len(b); i++ {
		v := hexTable[b[i]]
		if v < 0 {
			break
		}
		if i-start >= maxChunkLine {
			return 0, 0, errChunkLine
		}
		size = size<<4 | int64(v)
		if size > room || size > 1<<58 {
			return 0, 0, errBodyTooLarge
		}
	}
	if i == len(b) {
		return 0, 0, errIncomplete
	}
	if i == start {
		return 0, 0, errBadChunk
	}
	if i, err = scanChunkExt(b, i, start+maxChunkLine); err != nil {
		return 0, 0, err
	}
	if i+1 == len(b) {
		return 0, 0, errIncomplete
	}
	if b[i+1] != '\n' {
		return 0, 0, errBadLineEnd
	}
	return size, i + 2, nil
}

// extState is where scanChunkExt is in
//
//	chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
//	ext-val   = token / quoted-string
//
// (RFC 9112 7.1.1). Whitespace is taken only where the grammar has BWS,
// which RFC 9110 5.6.3 requires a recipient to accept: around ";" and "=".
// Whitespace after the size or an extension with no ";" after it
// ("5 \r\n", "5;a \r\n") is refused, like everything else off the grammar.
type extState uint8

const (
	extNext       extState = iota // after the size, a value or a name: ";", BWS or CR
	extBWS                        // after BWS: more BWS or ";"
	extNameStart                  // after ";": BWS or a name
	extName                       // in a name
	extAfterName                  // BWS after a name: "=" or ";"
	extValueStart                 // after "=": BWS, token or quoted-string
	extToken                      // in a token value
	extQuoted                     // in a quoted-string
	extQuotedPair                 // after a backslash in a quoted-string
	extBad
)

// scanChunkExt checks the chunk-ext at b[i:] and returns the offset of the
// CR that ends it; the line must end before limit.
func scanChunkExt(b []byte, i, limit int) (int, error) {
	st := extNext
	for ; i < len(b); i++ {
		if b[i] == '\r' {
			if st == extNext || st == extName || st == extToken {
				return i, nil
			}
			return 0, errBadChunk
		}
		if i >= limit {
			return 0, errChunkLine
		}
		if st = nextExtState(st, b[i]); st == extBad {
			return 0, errBadChunk
		}
	}
	return 0, errIncomplete
}

// nextExtState is the chunk-ext grammar as a transition function.
func nextExtState(st extState, c byte) extState {
	ws := c == ' ' || c == '\t'
	switch st {
	case extNext, extBWS:
		switch {
		case c == ';':
			return extNameStart
		case ws:
			return extBWS
		}
	case extNameStart:
		switch {
		case ws:
			return extNameStart
		case tokenTable[c]:
			return extName
		}
	case extName, extAfterName:
		switch {
		case st == extName && tokenTable[c]:
			return extName
		case c == ';':
			return extNameStart
		case c == '=':
			return extValueStart
		case ws:
			return extAfterName
		}
	case extValueStart:
		switch {
		case ws:
			return extValueStart
		case c == '"':
			return extQuoted
		case tokenTable[c]:
			return extToken
		}
	case extToken:
		switch {
		case tokenTable[c]:
			return extToken
		case c == ';':
			return extNameStart
		case ws:
			return extBWS
		}
	case extQuoted:
		switch {
		case c == '"':
			return extNext
		case c == '\\':
			return extQuotedPair
		case qdtextTable[c]:
			return extQuoted
		}
	case extQuotedPair:
		if isQuotedPairChar(c) {
			return extQuoted
		}
	}
	return extBad
}
