package throttle

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestGateOpensOncePerInterval(t *testing.T) {
	var g Gate
	t0 := time.Unix(1_700_000_000, 0)
	steps := []struct {
		at   time.Duration
		want bool
	}{
		{0, true},
		{500 * time.Millisecond, false},
		{999 * time.Millisecond, false},
		{time.Second, true},
		{1500 * time.Millisecond, false},
		{5 * time.Second, true},
	}
	for _, s := range steps {
		if got := g.Allow(t0.Add(s.at), time.Second); got != s.want {
			t.Errorf("Allow at +%s = %v, want %v", s.at, got, s.want)
		}
	}
}

func TestGateLetsOneOfRacingCallersThrough(t *testing.T) {
	var g Gate
	now := time.Unix(1_700_000_000, 0)
	var through atomic.Int32
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if g.Allow(now, time.Second) {
				through.Add(1)
			}
		})
	}
	wg.Wait()
	if n := through.Load(); n != 1 {
		t.Fatalf("%d callers got through at the same instant, want 1", n)
	}
}
