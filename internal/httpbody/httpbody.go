// Package httpbody reads a request body whole, up to a limit, into a buffer the caller keeps
// for the next request: the ingestion and Open Inference Protocol APIs both parse bodies from
// memory and pool their buffers, which io.ReadAll would not reuse.
package httpbody

import (
	"errors"
	"io"
)

// ErrTooLarge means the body holds more bytes than the limit.
var ErrTooLarge = errors.New("body too large")

// Read appends what r yields to buf until EOF, growing buf as needed, and returns it. It stops
// with ErrTooLarge once buf holds more than limit bytes, or with r's error. The buffer comes
// back in every case, so that its capacity can be kept.
func Read(r io.Reader, buf []byte, limit int64) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, ErrTooLarge
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
