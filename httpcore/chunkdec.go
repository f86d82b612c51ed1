package httpcore

import "bytes"

// chunkDecoder decodes a chunked request body (RFC 9112 7.1) incrementally,
// for bodies streamed to a handler: data goes out as it arrives, and only
// an incomplete chunk-size or trailer line is kept between reads, at the
// start of the next input. It applies the rules and limits of scanChunked
// (parseChunkSize, parseField): strict hex sizes and extensions, a bounded
// chunk-size line, MaxBodyBytes, and trailers bounded like a head. Like
// scanChunked, it parses a line that arrives in pieces again only once a
// line feed may have ended it, so a trickled line costs linear time.
type chunkDecoder struct {
	state   uint8
	left    int64 // data bytes left in the current chunk
	total   int64 // data bytes declared so far
	encoded int64 // body bytes consumed so far, framing included
	tbytes  int   // trailer section bytes so far
	scanned int   // bytes of the current line scanned without a line feed
	trailer []field
}

// chunkDecoder states, in the order they come.
const (
	decSize    uint8 = iota // a chunk-size line
	decData                 // chunk data
	decDataEnd              // the CRLF after chunk data
	decTrailer              // trailer field lines, up to the empty line
	decDone                 // the body is complete
)

// step decodes the element at the start of b — a chunk-size line, data
// (passed to p), the CRLF after data, or a trailer line — and returns the
// bytes it used; errIncomplete if b holds part of a line, errPipeFull if p
// took only part of the data.
func (d *chunkDecoder) step(b []byte, lim *limits, p *bodyPipe) (int, error) {
	switch d.state {
	case decSize:
		return d.sizeLine(b, lim)
	case decData:
		k := int(min(int64(len(b)), d.left))
		n := p.write(b[:k])
		if d.left -= int64(n); d.left == 0 {
			d.state = decDataEnd
		}
		if n < k {
			return n, errPipeFull
		}
		return n, nil
	case decDataEnd:
		switch {
		case len(b) > 0 && b[0] != '\r', len(b) > 1 && b[1] != '\n':
			return 0, errBadChunk
		case len(b) < 2:
			return 0, errIncomplete
		}
		d.state = decSize
		return 2, nil
	}
	return d.trailerLine(b, lim)
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
		return 0, errBodyTooLarge // as scanChunked: framing may not outweigh the data
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
func (d *chunkDecoder) trailerLine(b []byte, lim *limits) (int, error) {
	room := lim.maxHeader - d.tbytes
	tb := b[:min(len(b), room)]
	if len(tb) < room && !d.lineMayEnd(tb, room) {
		return 0, errIncomplete
	}
	n, err := d.parseTrailer(tb, lim)
	d.noteIncomplete(tb, err)
	if err == errIncomplete && len(tb) == room {
		return 0, errTrailerTooLarge
	}
	if err == nil {
		d.scanned = 0
	}
	d.tbytes += n
	return n, err
}

// lineMayEnd reports whether the line at the start of b, at most limit
// bytes before its CRLF, may now be complete or invalid.
func (d *chunkDecoder) lineMayEnd(b []byte, limit int) bool {
	return len(b) > limit || d.scanned < len(b) && bytes.IndexByte(b[d.scanned:], '\n') >= 0
}

// noteIncomplete records, after err from parsing the line at the start of
// b, how much of it was scanned.
func (d *chunkDecoder) noteIncomplete(b []byte, err error) {
	if err == errIncomplete {
		d.scanned = len(b)
	}
}

func (d *chunkDecoder) parseTrailer(b []byte, lim *limits) (int, error) {
	if len(b) == 0 {
		return 0, errIncomplete
	}
	switch b[0] {
	case '\r':
		if len(b) < 2 {
			return 0, errIncomplete
		}
		if b[1] != '\n' {
			return 0, errBadLineEnd
		}
		d.state = decDone
		return 2, nil
	case '\n':
		return 0, errBadLineEnd
	case ' ', '\t':
		return 0, errObsFold
	}
	name, value, next, err := parseField(b, 0)
	if err != nil {
		return 0, err
	}
	if len(d.trailer) >= lim.maxFields {
		return 0, errTooManyFields
	}
	d.trailer = append(d.trailer, field{string(name), string(value)})
	return next, nil
}
