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
	if _, ok, _ := l.take("busy", 5); !ok {
		t.Fatal("busy client's first body refused")
	}
	for i := range maxIdleLimiters - 1 {
		if _, ok, _ := l.take("idle-"+strconv.Itoa(i), 0); !ok {
			t.Fatalf("idle client %d refused", i)
		}
	}
	if _, ok, _ := l.take("newcomer", 1); !ok {
		t.Fatal("newcomer refused")
	}
	_, ok, wait := l.take("busy", 1)
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

// TestLimitersSweepOncePerDoubling: when the clients past the sweep size are all busy, a sweep
// frees nothing, and the next one waits until the map has doubled instead of scanning it again
// for every newcomer.
func TestLimitersSweepOncePerDoubling(t *testing.T) {
	now := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	l := newLimiters(1, 5, func() time.Time { return now })
	for i := range maxIdleLimiters {
		if _, ok, _ := l.take("busy-"+strconv.Itoa(i), 1); !ok {
			t.Fatalf("busy client %d refused", i)
		}
	}
	l.take("newcomer-0", 1)
	if want := 2 * maxIdleLimiters; l.sweepAt != want {
		t.Fatalf("after a sweep that freed nothing the next is at %d buckets, want %d", l.sweepAt, want)
	}
	for i := 1; i < maxIdleLimiters; i++ {
		l.take("newcomer-"+strconv.Itoa(i), 1)
	}
	if got := len(l.m); got != 2*maxIdleLimiters {
		t.Errorf("%d buckets, want every busy client kept (%d)", got, 2*maxIdleLimiters)
	}
	if l.sweepAt != 2*maxIdleLimiters {
		t.Errorf("a newcomer below the doubling swept again: next sweep at %d", l.sweepAt)
	}
}
