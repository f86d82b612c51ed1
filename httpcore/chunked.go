package httpcore

// Chunked request bodies (RFC 9112 7.1) are validated as they arrive,
// resuming where the previous read stopped, and only once complete are their
// data moved together in place, so the handler sees one contiguous body.

// chunkScan is the progress of validating a chunked body across reads.
// Offsets are from the start of the request.
type chunkScan struct {
	pos     int   // start of the next chunk-size or trailer line
	body    int64 // data bytes in the chunks scanned so far
	trailer int   // start of the trailer section; 0 while in chunks
	fields  int   // trailer fields scanned so far
}

// scanChunked validates the chunked body of the request at the start of b,
// whose head is headLen bytes, from s.pos on. It returns the length of the
// whole message, errIncomplete, or a *protoError.
func scanChunked(b []byte, headLen int, s *chunkScan, lim *limits) (int, error) {
	if s.pos == 0 {
		s.pos = headLen
	}
	for s.trailer == 0 {
		size, data, err := parseChunkSize(b, s.pos, lim.maxBody-s.body)
		if err != nil {
			return 0, err
		}
		if size == 0 {
			s.pos, s.trailer = data, data
			break
		}
		end := data + int(size) // no overflow: size <= maxBody
		if int64(end+2-headLen) > lim.maxChunked {
			return 0, errBodyTooLarge
		}
		if end+2 > len(b) {
			return 0, errIncomplete
		}
		if b[end] != '\r' || b[end+1] != '\n' {
			return 0, errBadChunk
		}
		s.body += size
		s.pos = end + 2
	}
	return scanTrailers(b, s, lim)
}

// parseChunkSize parses chunk-size [ chunk-ext ] CRLF at b[i:]: strict hex,
// at most room, extensions skipped but checked, the line bounded by
// maxChunkLine. It returns the size and the offset of the chunk data.
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
	// chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ), skipped.
	ext := false
	for ; i < len(b) && b[i] != '\r'; i++ {
		if i-start >= maxChunkLine {
			return 0, 0, errChunkLine
		}
		switch c := b[i]; {
		case c == ';':
			ext = true
		case c == ' ' || c == '\t':
		case !ext || !extTable[c]:
			return 0, 0, errBadChunk
		}
	}
	if i+1 >= len(b) {
		return 0, 0, errIncomplete
	}
	if b[i+1] != '\n' {
		return 0, 0, errBadLineEnd
	}
	return size, i + 2, nil
}

// scanTrailers validates the trailer section from s.pos, bounded like a
// head, and returns the length of the whole message.
func scanTrailers(b []byte, s *chunkScan, lim *limits) (int, error) {
	limit := s.trailer + lim.maxHeader
	tb := b[:min(len(b), limit)]
	for {
		next, err := trailerLine(tb, s.pos)
		switch {
		case err == errIncomplete && len(tb) == limit:
			return 0, errTrailerTooLarge
		case err != nil:
			return 0, err
		case next < 0:
			return -next, nil
		}
		if s.fields++; s.fields > lim.maxFields {
			return 0, errTooManyFields
		}
		s.pos = next
	}
}

// trailerLine checks the field line at b[i:] and returns where the next
// begins, or minus the end of the section if b[i:] is the final CRLF.
func trailerLine(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errIncomplete
	}
	switch b[i] {
	case '\r':
		if i+1 == len(b) {
			return 0, errIncomplete
		}
		if b[i+1] != '\n' {
			return 0, errBadLineEnd
		}
		return -(i + 2), nil
	case '\n':
		return 0, errBadLineEnd
	case ' ', '\t':
		return 0, errObsFold
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
