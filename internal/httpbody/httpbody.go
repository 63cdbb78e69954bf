// Package httpbody reads a request body whole, up to a limit and within the process's budget of
// body bytes in memory, into a buffer the caller keeps for the next request: the ingestion and
// Open Inference Protocol APIs both parse bodies from memory and pool their buffers, which
// io.ReadAll would not reuse. It also refuses a body the way clients that send it all before
// reading can hear (Refuse).
package httpbody

import (
	"errors"
	"io"
)

// ErrTooLarge means the body holds more bytes than the limit.
var ErrTooLarge = errors.New("body too large")

// ErrBusy means the process's body budget is spent: the body is refused for now, not for what
// it is.
var ErrBusy = errors.New("the server holds as many request bodies as its memory allows")

// firstChunk is the buffer a read starts with when it has none: bodies grow from it as their
// bytes arrive, never from the Content-Length a client claims.
const firstChunk = 4 << 10

// Read appends what r yields to buf until EOF, growing buf as bytes arrive, and returns it. It
// stops with ErrTooLarge once buf holds more than limit bytes, with ErrBusy when budget (nil for
// none) cannot cover the buffer's growth, or with r's error. The buffer comes back in every
// case, so that its capacity can be kept; so does what the budget lent for it (held), which the
// caller gives back with budget.Release once it no longer needs the buffer's contents.
func Read(r io.Reader, buf []byte, limit int64, budget *Budget) (_ []byte, held int64, _ error) {
	if cap(buf) == 0 {
		buf = make([]byte, 0, firstChunk)
	}
	if !budget.take(int64(cap(buf))) {
		return buf, 0, ErrBusy
	}
	held = int64(cap(buf))
	for {
		if len(buf) == cap(buf) {
			grown := append(buf, 0)[:len(buf)]
			if !budget.take(int64(cap(grown) - cap(buf))) {
				return buf, held, ErrBusy
			}
			held += int64(cap(grown) - cap(buf))
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, held, ErrTooLarge
		}
		if err == io.EOF {
			return buf, held, nil
		}
		if err != nil {
			return buf, held, err
		}
	}
}
