package httpbody

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestRead(t *testing.T) {
	t.Parallel()
	body := strings.Repeat("x", 1000)
	cases := map[string]struct {
		r       io.Reader
		buf     []byte
		limit   int64
		want    string
		wantErr error
	}{
		"grows from nil":          {r: strings.NewReader(body), limit: 1000, want: body},
		"reuses a larger buffer":  {r: iotest.OneByteReader(strings.NewReader(body)), buf: make([]byte, 0, 4096), limit: 1000, want: body},
		"empty":                   {r: strings.NewReader(""), limit: 0, want: ""},
		"one byte over the limit": {r: strings.NewReader(body), limit: 999, wantErr: ErrTooLarge},
		"reader error":            {r: iotest.ErrReader(io.ErrUnexpectedEOF), limit: 1000, wantErr: io.ErrUnexpectedEOF},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Read(tc.r, tc.buf, tc.limit)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && string(got) != tc.want {
				t.Errorf("read %d bytes, want %d", len(got), len(tc.want))
			}
			if tc.buf != nil && cap(got) != cap(tc.buf) {
				t.Errorf("capacity %d, want the given buffer's %d", cap(got), cap(tc.buf))
			}
		})
	}
}
