package queue

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClassify(t *testing.T) {
	api := func(code jetstream.ErrorCode, desc string) error {
		return fmt.Errorf("creating stream s: %w", &jetstream.APIError{Code: 500, ErrorCode: code, Description: desc})
	}
	cases := map[string]struct {
		err     error
		want    []error
		notWant []error
		storage bool
	}{
		"stream missing":   {err: jetstream.ErrStreamNotFound, want: []error{ErrConsumerMissing}},
		"consumer missing": {err: jetstream.ErrConsumerNotFound, want: []error{ErrConsumerMissing}},
		"timeout":          {err: context.DeadlineExceeded, want: []error{ErrUnreachable}, notWant: []error{ErrNoQuorum}},
		"no responders":    {err: nats.ErrNoResponders, want: []error{ErrUnreachable}},
		"cluster unavailable": {err: api(10008, "JetStream system temporarily unavailable"),
			want: []error{ErrUnreachable, ErrNoQuorum}},
		"stream offline":   {err: api(10118, "stream is offline"), want: []error{ErrUnreachable, ErrNoQuorum}},
		"consumer offline": {err: api(10119, "consumer is offline"), want: []error{ErrUnreachable, ErrNoQuorum}},
		"single server":    {err: api(10074, "replicas > 1 not supported in non-clustered mode"), want: []error{ErrNotEnoughServers}},
		"too few peers":    {err: api(10005, "no suitable peers for placement"), want: []error{ErrNotEnoughServers}},
		"no peer has room": {err: api(10005, "no suitable peers for placement, insufficient storage"),
			notWant: []error{ErrNotEnoughServers, ErrUnreachable}, storage: true},
		"store full":             {err: api(10047, "insufficient storage resources available"), notWant: []error{ErrUnreachable}, storage: true},
		"insufficient resources": {err: api(10023, "insufficient resources"), storage: true},
		"other":                  {err: api(10058, "stream name already in use"), notWant: []error{ErrUnreachable, ErrConsumerMissing, ErrNotEnoughServers}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got := classify(tc.err)
			if !errors.Is(got, tc.err) {
				t.Errorf("classify lost the cause: %v", got)
			}
			for _, w := range tc.want {
				if !errors.Is(got, w) {
					t.Errorf("classify(%v) = %v, not %v", tc.err, got, w)
				}
			}
			for _, w := range tc.notWant {
				if errors.Is(got, w) {
					t.Errorf("classify(%v) = %v, wrongly %v", tc.err, got, w)
				}
			}
			if isStorageRefusal(tc.err) != tc.storage {
				t.Errorf("isStorageRefusal(%v) = %v, want %v", tc.err, !tc.storage, tc.storage)
			}
		})
	}
	if classify(nil) != nil {
		t.Error("classify(nil) is not nil")
	}
}
