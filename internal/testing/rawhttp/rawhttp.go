// Package rawhttp is an HTTP/1.1 client for tests that behaves as many real ones do and Go's
// does not: it writes the whole request, body included, before it reads a byte of the answer
// (Python's urllib and requests, many Java clients).
package rawhttp

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Answer is what came back: the status, the headers and the body, or the error that cut it.
type Answer struct {
	Status int
	Header http.Header
	Body   string
	// Close: the server said Connection: close (net/http moves it out of Header).
	Close bool
	// Err is set when writing the request or reading the answer failed (a reset connection).
	Err error
}

// PostAllFirst sends POST path to addr (host:port) with a body of size bytes, all of them
// before reading, and reads the answer. The connection has a 60 s guard, not a timing check.
func PostAllFirst(tb testing.TB, addr, path, contentType string, size int) Answer {
	tb.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	head := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", path, addr, contentType, size)
	if _, err := io.WriteString(conn, head); err != nil {
		return Answer{Err: err}
	}
	chunk := []byte(strings.Repeat("[", 64<<10))
	for sent := 0; sent < size; {
		n := min(len(chunk), size-sent)
		if _, err := conn.Write(chunk[:n]); err != nil {
			return Answer{Err: fmt.Errorf("writing the body after %d bytes: %w", sent, err)}
		}
		sent += n
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return Answer{Err: fmt.Errorf("reading the answer: %w", err)}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: string(body), Close: resp.Close, Err: err}
}
