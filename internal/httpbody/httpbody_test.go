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
		budget  int64 // 0: none
		want    string
		wantErr error
	}{
		"grows from nil":          {r: strings.NewReader(body), limit: 1000, want: body},
		"reuses a larger buffer":  {r: iotest.OneByteReader(strings.NewReader(body)), buf: make([]byte, 0, 4096), limit: 1000, want: body},
		"empty":                   {r: strings.NewReader(""), limit: 0, want: ""},
		"one byte over the limit": {r: strings.NewReader(body), limit: 999, wantErr: ErrTooLarge},
		"reader error":            {r: iotest.ErrReader(io.ErrUnexpectedEOF), limit: 1000, wantErr: io.ErrUnexpectedEOF},
		"within the budget":       {r: strings.NewReader(body), limit: 1000, budget: firstChunk, want: body},
		"budget spent while growing": {r: strings.NewReader(strings.Repeat("x", firstChunk+1)), limit: 1 << 20,
			budget: firstChunk + 1, wantErr: ErrBusy},
		"budget spent before a byte": {r: strings.NewReader(body), limit: 1000, budget: 10, wantErr: ErrBusy},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var budget *Budget
			if tc.budget > 0 {
				budget = NewBudget(tc.budget)
			}
			got, held, err := Read(tc.r, tc.buf, tc.limit, budget)
			if budget != nil && budget.InUse() != held {
				t.Errorf("the budget lent %d bytes, Read says it holds %d", budget.InUse(), held)
			}
			budget.Release(held)
			if budget.InUse() != 0 {
				t.Errorf("after Release the budget still lends %d bytes", budget.InUse())
			}
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
