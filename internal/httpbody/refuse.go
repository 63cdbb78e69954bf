package httpbody

import (
	"io"
	"net/http"
	"time"
)

// What Refuse reads and discards at most after its answer, as nginx's lingering close does
// (lingering_time 30 s): enough for a client to finish a body of any size the APIs would have
// accepted, bounded so that a client cannot keep the connection for ever.
const (
	lingerTime  = 30 * time.Second
	lingerBytes = 64 << 20
)

// Refuse answers a request whose body is not read whole (413, 503) so that clients that send
// the whole body before reading the answer — Python's urllib and requests, many Java clients —
// see it too: closing at once would reset the connection under their write. It marks the answer
// Connection: close, lets answer write it, sends it, and then reads and discards the rest of
// the body for a bounded time and byte count before the connection closes.
func Refuse(w http.ResponseWriter, r *http.Request, answer func()) {
	rc := http.NewResponseController(w)
	// Without full duplex, net/http stops reading the body once the answer is written.
	duplex := rc.EnableFullDuplex() == nil
	w.Header().Set("Connection", "close")
	answer()
	if !duplex || r.Body == nil {
		return
	}
	_ = rc.Flush()
	_ = rc.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, r.Body, lingerBytes)
}
