package httpcore

import "time"

// dateCache holds the Date header line, refreshed by the loop when the
// second changes, so responses copy it instead of formatting a time.
type dateCache struct {
	sec  int64
	line []byte // "Date: Mon, 02 Jan 2006 15:04:05 GMT\r\n"
}

// httpTime is the IMF-fixdate layout of RFC 9110 5.6.7.
const httpTime = "Mon, 02 Jan 2006 15:04:05 GMT"

// update refreshes the cached line if t is in a new second.
func (d *dateCache) update(t time.Time) {
	sec := t.Unix()
	if sec == d.sec && d.line != nil {
		return
	}
	d.sec = sec
	d.line = append(d.line[:0], "Date: "...)
	d.line = t.UTC().AppendFormat(d.line, httpTime)
	d.line = append(d.line, "\r\n"...)
}
