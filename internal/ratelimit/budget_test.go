package ratelimit

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func TestBudgetForgetsOnlyIdleBuckets(t *testing.T) {
	b := NewBudget(1, 5, nil, func() time.Time { return t0 })
	// One busy client, then enough idle ones (each charged nothing) to reach the sweep.
	if _, ok, _ := b.Take("busy", 5); !ok {
		t.Fatal("busy client's first body refused")
	}
	for i := range maxIdleBuckets - 1 {
		if _, ok, _ := b.Take("idle-"+strconv.Itoa(i), 0); !ok {
			t.Fatalf("idle client %d refused", i)
		}
	}
	if _, ok, _ := b.Take("newcomer", 1); !ok {
		t.Fatal("newcomer refused")
	}
	_, ok, wait := b.Take("busy", 1)
	type state struct {
		Buckets int
		BusyOK  bool
		Wait    time.Duration
	}
	// The sweep dropped the idle buckets but kept the busy one, still empty: no free reset.
	if diff := cmp.Diff(state{2, false, time.Second}, state{len(b.m), ok, wait}); diff != "" {
		t.Errorf("after the sweep (-want +got):\n%s", diff)
	}
}

// TestBudgetSweepsOncePerDoubling: when the clients past the sweep size are all busy, a sweep
// frees nothing, and the next one waits until the map has doubled instead of scanning it again
// for every newcomer.
func TestBudgetSweepsOncePerDoubling(t *testing.T) {
	b := NewBudget(1, 5, nil, func() time.Time { return t0 })
	for i := range maxIdleBuckets {
		if _, ok, _ := b.Take("busy-"+strconv.Itoa(i), 1); !ok {
			t.Fatalf("busy client %d refused", i)
		}
	}
	b.Take("newcomer-0", 1)
	if want := 2 * maxIdleBuckets; b.sweepAt != want {
		t.Fatalf("after a sweep that freed nothing the next is at %d buckets, want %d", b.sweepAt, want)
	}
	for i := 1; i < maxIdleBuckets; i++ {
		b.Take("newcomer-"+strconv.Itoa(i), 1)
	}
	if got := len(b.m); got != 2*maxIdleBuckets {
		t.Errorf("%d buckets, want every busy client kept (%d)", got, 2*maxIdleBuckets)
	}
	if b.sweepAt != 2*maxIdleBuckets {
		t.Errorf("a newcomer below the doubling swept again: next sweep at %d", b.sweepAt)
	}
}

// TestBudgetShare: a pod holds the pipeline's limit divided by the live pods, in rate and in
// burst, follows the count as it changes, and admits a body larger than its share of the burst
// from a full bucket, repaying it before the next.
func TestBudgetShare(t *testing.T) {
	now, pods := t0, 4
	b := NewBudget(100, 40, func() int { return pods }, func() time.Time { return now })
	type step struct {
		advance time.Duration
		pods, n int
		ok      bool
		wait    time.Duration
	}
	steps := map[string][]step{
		"a quarter of the burst, then a quarter of the rate": {
			{n: 10, pods: 4, ok: true},
			{n: 1, pods: 4, wait: 40 * time.Millisecond}, // 25 events/s
			{advance: 40 * time.Millisecond, n: 1, pods: 4, ok: true},
		},
		"a body above the share, from a full bucket, then its debt": {
			{n: 30, pods: 4, ok: true},                    // 10 held, 30 paid: 20 in debt
			{n: 1, pods: 4, wait: 840 * time.Millisecond}, // 21 events at 25/s
		},
		"a pod leaves: the share grows": {
			{n: 10, pods: 4, ok: true},
			{n: 1, pods: 2, wait: 20 * time.Millisecond}, // 50 events/s
		},
		"a pod joins: the share and what it held shrink": {
			{advance: time.Hour, n: 0, pods: 4, ok: true}, // a full share of 10
			{n: 6, pods: 8, ok: true},                     // the share is 5 now, and so is what it holds
			{n: 1, pods: 8, wait: 160 * time.Millisecond}, // 1 in debt, 2 to earn at 12.5/s
		},
	}
	for name, steps := range steps {
		t.Run(name, func(t *testing.T) {
			b.m = map[string]*bucket{}
			for i, s := range steps {
				now, pods = now.Add(s.advance), s.pods
				_, ok, wait := b.Take("client", s.n)
				if ok != s.ok || wait.Round(time.Millisecond) != s.wait {
					t.Errorf("step %d: ok %v wait %v, want ok %v wait %v", i, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

// TestBudgetKeysAreApart: one client's spending costs another nothing.
func TestBudgetKeysAreApart(t *testing.T) {
	b := NewBudget(10, 10, func() int { return 2 }, func() time.Time { return t0 })
	if _, ok, _ := b.Take("a", 5); !ok {
		t.Fatal("a's first body refused")
	}
	if _, ok, _ := b.Take("a", 1); ok {
		t.Fatal("a got more than its share of the burst")
	}
	if _, ok, _ := b.Take("b", 5); !ok {
		t.Fatal("b was refused for a's spending")
	}
}
