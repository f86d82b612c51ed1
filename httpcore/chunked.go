package httpcore

import "bytes"

// Chunked request bodies (RFC 9112 7.1) are validated as they arrive,
// resuming where the previous read stopped, and only once complete are their
// data moved together in place, so the handler sees one contiguous body.

// chunkScan is the progress of validating a chunked body across reads.
// Offsets are from the start of the request. A line (chunk-size or
// trailer field) that arrives in pieces is parsed again only once a line
// feed has arrived after the part already scanned, or the line has crossed
// its limit, and chunk data is not looked at until all of it is there: a
// body trickled a byte per read costs linear time, like a trickled head.
type chunkScan struct {
	pos     int   // start of the next chunk-size or trailer line
	body    int64 // data bytes in the chunks scanned so far
	trailer int   // start of the trailer section; 0 while in chunks
	dataEnd int   // end of the data of the chunk at pos; 0 when pos is at a line
	fields  int32 // trailer fields scanned so far
	scanned int32 // bytes from pos scanned without finding a line feed
}

// scanChunked validates the chunked body of the request at the start of b,
// whose head is headLen bytes, from s.pos on. It returns the length of the
// whole message, errIncomplete, or a *protoError.
func scanChunked(b []byte, headLen int, s *chunkScan, lim *limits) (int, error) {
	if s.pos == 0 {
		s.pos = headLen
	}
	for s.trailer == 0 {
		if s.dataEnd == 0 {
			if err := s.nextChunk(b, headLen, lim); err != nil {
				return 0, err
			}
			if s.trailer != 0 {
				break
			}
		}
		if s.dataEnd+2 > len(b) {
			return 0, errIncomplete
		}
		if b[s.dataEnd] != '\r' || b[s.dataEnd+1] != '\n' {
			return 0, errBadChunk
		}
		s.pos, s.dataEnd = s.dataEnd+2, 0
	}
	return scanTrailers(b, s, lim)
}

// nextChunk parses the chunk-size line at s.pos: it moves on to the
// chunk's data (s.dataEnd), or to the trailer section after the last
// chunk.
func (s *chunkScan) nextChunk(b []byte, headLen int, lim *limits) error {
	if !s.lineMayEnd(b, maxChunkLine) {
		return errIncomplete
	}
	size, data, err := parseChunkSize(b, s.pos, lim.maxBody-s.body)
	if err != nil {
		s.noteIncomplete(b, err)
		return err
	}
	s.scanned = 0
	if size == 0 {
		s.pos, s.trailer = data, data
		return nil
	}
	end := data + int(size) // no overflow: size <= maxBody
	if int64(end+2-headLen) > lim.maxChunked {
		return errBodyTooLarge
	}
	s.body += size
	s.pos, s.dataEnd = data, end
	return nil
}

// lineMayEnd reports whether the line at s.pos, at most limit bytes before
// its CRLF, may now be complete or invalid: a line feed arrived after the
// part scanned before, or the line is over its limit.
func (s *chunkScan) lineMayEnd(b []byte, limit int) bool {
	from := s.pos + int(s.scanned)
	return len(b)-s.pos > limit || from < len(b) && bytes.IndexByte(b[from:], '\n') >= 0
}

// noteIncomplete records, after err from parsing the line at s.pos, how much
// of it was scanned.
func (s *chunkScan) noteIncomplete(b []byte, err error) {
	if err == errIncomplete {
		s.scanned = int32(len(b) - s.pos)
	}
}

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

// scanTrailers validates the trailer section from s.pos, bounded like a
// head, and returns the length of the whole message.
func scanTrailers(b []byte, s *chunkScan, lim *limits) (int, error) {
	limit := s.trailer + lim.maxHeader
	tb := b[:min(len(b), limit)]
	for {
		if len(tb) < limit && !s.lineMayEnd(tb, lim.maxHeader) {
			return 0, errIncomplete
		}
		next, err := trailerLine(tb, s.pos)
		s.noteIncomplete(tb, err)
		switch {
		case err == errIncomplete && len(tb) == limit:
			return 0, errTrailerTooLarge
		case err != nil:
			return 0, err
		case next < 0:
			return -next, nil
		}
		if s.fields++; int(s.fields) > lim.maxFields {
			return 0, errTooManyFields
		}
		s.pos, s.scanned = next, 0
	}
}

// trailerLine checks the field line at b[i:] and returns where the next
// begins, or minus the end of the section if b[i:] is the final CRLF.
func trailerLine(b []byte, i int) (int, error) {
	if end, err := fieldsEnd(b, i); end != 0 || err != nil {
		return -end, err
	}
	_, _, next, err := parseField(b, i)
	return next, err
}

// dechunk moves the data of the validated chunked body after the head
// together in place. It returns the body length and the offset of the
// trailer section.
func dechunk(b []byte, headLen int) (n, trailer int) {
	dst, i := headLen, headLen
	for {
		size := 0
		for ; hexTable[b[i]] >= 0; i++ {
			size = size<<4 | int(hexTable[b[i]])
		}
		for b[i] != '\n' {
			i++
		}
		i++
		if size == 0 {
			return dst - headLen, i
		}
		dst += copy(b[dst:], b[i:i+size])
		i += size + 2
	}
}
