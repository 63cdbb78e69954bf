package ingest

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLimitersForgetOnlyIdleBuckets(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	l := newLimiters(1, 5, func() time.Time { return now })
	// One busy client, then enough idle ones (each charged nothing) to reach the sweep.
	if ok, _ := l.take("busy", 5); !ok {
		t.Fatal("busy client's first body refused")
	}
	for i := range maxIdleLimiters - 1 {
		if ok, _ := l.take("idle-"+strconv.Itoa(i), 0); !ok {
			t.Fatalf("idle client %d refused", i)
		}
	}
	if ok, _ := l.take("newcomer", 1); !ok {
		t.Fatal("newcomer refused")
	}
	ok, wait := l.take("busy", 1)
	got := struct {
		Buckets int
		BusyOK  bool
		Wait    time.Duration
	}{len(l.m), ok, wait}
	want := struct {
		Buckets int
		BusyOK  bool
		Wait    time.Duration
	}{2, false, time.Second}
	// The sweep dropped the idle buckets but kept the busy one, still empty: no free reset.
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the sweep (-want +got):\n%s", diff)
	}
}
