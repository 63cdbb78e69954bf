package autoscale

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is the fake clock's origin; a test's time is t0 plus an offset.
var t0 = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func at(offset time.Duration) time.Time { return t0.Add(offset) }

var errNATS = errors.New("NATS unreachable")

// step is one reading and the Decision it must produce.
type step struct {
	in   Input
	want Decision
}

// replay feeds steps to a new Recommender for p, comparing each Decision.
func replay(t *testing.T, p Policy, steps []step) {
	t.Helper()
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range steps {
		if diff := cmp.Diff(s.want, r.Recommend(s.in)); diff != "" {
			t.Errorf("step %d (%v): Decision (-want +got):\n%s", i, s.in.Now.Sub(t0), diff)
		}
	}
}

// ready is a reading of a pool whose pods all pass readiness.
func ready(offset time.Duration, current int32, lag int64) Input {
	return Input{Now: at(offset), Current: current, Ready: current, Lag: lag}
}

func failed(offset time.Duration, current int32) Input {
	return Input{Now: at(offset), Current: current, Ready: current, LagErr: errNATS}
}

func TestRecommendOneReading(t *testing.T) {
	t.Parallel()
	noWindow := ptr(time.Duration(0))
	cases := map[string]struct {
		policy Policy
		in     Input
		want   Decision
	}{
		"capped at maxReplicas": {
			policy: valid(nil),
			in:     ready(0, 8, 5000),
			want: Decision{Desired: 10, Direction: Up,
				Reason: "queue depth 5000 over target 100/replica → 50 replicas, capped at maxReplicas 10: scale up 8 → 10"},
		},
		"capped and rate limited": {
			policy: valid(nil),
			in:     ready(0, 3, 5000),
			want: Decision{Desired: 7, Direction: Up,
				Reason: "queue depth 5000 over target 100/replica → 50 replicas, capped at maxReplicas 10; scale-up limited to 7 by rate policies: scale up 3 → 7"},
		},
		"within tolerance above": {
			policy: valid(nil),
			in:     ready(0, 10, 1050),
			want: Decision{Desired: 10,
				Reason: "queue depth 1050 over target 100/replica → 11 replicas, within tolerance 0.1 of 10: holding 10 replicas"},
		},
		"within tolerance below": {
			policy: valid(func(p *Policy) { p.ScaleDown.StabilizationWindow = noWindow }),
			in:     ready(0, 10, 900),
			want: Decision{Desired: 10,
				Reason: "queue depth 900 over target 100/replica → 9 replicas, within tolerance 0.1 of 10: holding 10 replicas"},
		},
		"just outside tolerance": {
			policy: valid(func(p *Policy) { p.MaxReplicas = 20 }),
			in:     ready(0, 10, 1101),
			want: Decision{Desired: 12, Direction: Up,
				Reason: "queue depth 1101 over target 100/replica → 12 replicas: scale up 10 → 12"},
		},
		"custom tolerance": {
			policy: valid(func(p *Policy) { p.Tolerance = 0.01; p.MaxReplicas = 20 }),
			in:     ready(0, 10, 1050),
			want: Decision{Desired: 11, Direction: Up,
				Reason: "queue depth 1050 over target 100/replica → 11 replicas: scale up 10 → 11"},
		},
		"pods still starting are not capacity for a scale-up": {
			policy: valid(func(p *Policy) { p.MaxReplicas = 20 }),
			in:     Input{Now: t0, Current: 10, Ready: 5, Lag: 1050},
			want: Decision{Desired: 11, Direction: Up,
				Reason: "queue depth 1050 over target 100/replica → 11 replicas: scale up 10 → 11"},
		},
		"tolerance against ready pods": {
			policy: valid(func(p *Policy) { p.MaxReplicas = 20 }),
			in:     Input{Now: t0, Current: 12, Ready: 11, Lag: 1201},
			want: Decision{Desired: 12,
				Reason: "queue depth 1201 over target 100/replica → 13 replicas, within tolerance 0.1 of 11 ready: holding 12 replicas"},
		},
		"not-ready pods do not stop a scale-down": {
			policy: valid(func(p *Policy) { p.ScaleDown.StabilizationWindow = noWindow }),
			in:     Input{Now: t0, Current: 10, Ready: 4, Lag: 400},
			want: Decision{Desired: 4, Direction: Down,
				Reason: "queue depth 400 over target 100/replica → 4 replicas: scale down 10 → 4"},
		},
		"a new recommender does not scale down within its first window": {
			policy: valid(nil),
			in:     ready(0, 10, 400),
			want: Decision{Desired: 10,
				Reason: "queue depth 400 over target 100/replica → 4 replicas; scale-down stabilized: highest recommendation in the last 5m0s is 10: holding 10 replicas"},
		},
		"raised to minReplicas": {
			policy: valid(func(p *Policy) { p.MinReplicas = 2; p.ScaleDown.StabilizationWindow = noWindow }),
			in:     ready(0, 2, 0),
			want: Decision{Desired: 2,
				Reason: "queue depth 0 over target 100/replica → 0 replicas, raised to minReplicas 2: holding 2 replicas"},
		},
		"current below minReplicas": {
			policy: valid(nil),
			in:     ready(0, 0, 0),
			want:   Decision{Desired: 1, Direction: Up, Bounds: true, Reason: "current 0 replicas below minReplicas 1: scale up 0 → 1"},
		},
		"current above maxReplicas, even unread": {
			policy: valid(nil),
			in:     failed(0, 12),
			want:   Decision{Desired: 10, Direction: Down, Bounds: true, Reason: "current 12 replicas above maxReplicas 10: scale down 12 → 10"},
		},
		"at zero, depth not over the activation threshold": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0; p.ActivationThreshold = 10 }),
			in:     ready(0, 0, 10),
			want:   Decision{Desired: 0, Reason: "queue depth 10 not over activation threshold 10: staying at zero replicas"},
		},
		"at zero, depth over the activation threshold": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0; p.ActivationThreshold = 10 }),
			in:     ready(0, 0, 11),
			want: Decision{Desired: 1, Direction: Up,
				Reason: "queue depth 11 over target 100/replica → 1 replica: scale up 0 → 1"},
		},
		"leaving zero with a Percent-only policy": {
			policy: valid(func(p *Policy) {
				p.MinReplicas = 0
				p.ScaleUp.Policies = []RatePolicy{{Type: Percent, Value: 100, Period: time.Minute}}
			}),
			in: ready(0, 0, 900),
			want: Decision{Desired: 1, Direction: Up,
				Reason: "queue depth 900 over target 100/replica → 9 replicas; scale-up limited to 1 by rate policies: scale up 0 → 1"},
		},
		"a running pool keeps a worker below the activation threshold": {
			policy: valid(func(p *Policy) {
				p.MinReplicas = 0
				p.ActivationThreshold = 10
				p.ScaleDown.StabilizationWindow = noWindow
			}),
			in:   ready(0, 1, 5),
			want: Decision{Desired: 1, Reason: "queue depth 5 over target 100/replica → 1 replica: holding 1 replica"},
		},
		"drain target with measured throughput": {
			policy: valid(func(p *Policy) { p.DrainTarget = time.Minute }),
			in:     Input{Now: t0, Current: 2, Ready: 2, Lag: 6000, Throughput: 20},
			want: Decision{Desired: 5, Direction: Up,
				Reason: "queue depth 6000 to drain in 1m0s at 20 events/s per replica → 5 replicas: scale up 2 → 5"},
		},
		"drain target sizes a fast model below the depth target": {
			policy: valid(func(p *Policy) { p.DrainTarget = time.Minute }),
			in:     Input{Now: t0, Current: 1, Ready: 1, Lag: 6000, Throughput: 1000},
			want:   Decision{Desired: 1, Reason: "queue depth 6000 to drain in 1m0s at 1000 events/s per replica → 1 replica: holding 1 replica"},
		},
		"a measured rate is written with three significant digits": {
			policy: valid(func(p *Policy) { p.DrainTarget = 30 * time.Second }),
			in:     Input{Now: t0, Current: 2, Ready: 2, Lag: 500, Throughput: 19.87654},
			want:   Decision{Desired: 2, Reason: "queue depth 500 to drain in 30s at 19.9 events/s per replica → 1 replica; scale-down stabilized: highest recommendation in the last 5m0s is 2: holding 2 replicas"},
		},
		"a throughput that is not a positive finite number is unknown": {
			policy: valid(func(p *Policy) { p.DrainTarget = time.Minute; p.ScaleDown.StabilizationWindow = noWindow }),
			in:     Input{Now: t0, Current: 5, Ready: 5, Lag: 300, Throughput: math.Inf(1)},
			want: Decision{Desired: 3, Direction: Down,
				Reason: "queue depth 300 over target 100/replica (throughput unknown) → 3 replicas: scale down 5 → 3"},
		},
		"drain target without measured throughput uses the depth target": {
			policy: valid(func(p *Policy) { p.DrainTarget = time.Minute; p.MaxReplicas = 100 }),
			in:     Input{Now: t0, Current: 30, Ready: 30, Lag: 6000},
			want: Decision{Desired: 60, Direction: Up,
				Reason: "queue depth 6000 over target 100/replica (throughput unknown) → 60 replicas: scale up 30 → 60"},
		},
		"scale-up disabled": {
			policy: valid(func(p *Policy) { p.ScaleUp.Select = SelectDisabled }),
			in:     ready(0, 3, 900),
			want: Decision{Desired: 3,
				Reason: "queue depth 900 over target 100/replica → 9 replicas; scale-up disabled: holding 3 replicas"},
		},
		"scale-up disabled keeps even a pool at zero there": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0; p.ScaleUp.Select = SelectDisabled }),
			in:     ready(0, 0, 500),
			want: Decision{Desired: 0,
				Reason: "queue depth 500 over target 100/replica → 5 replicas; scale-up disabled: holding 0 replicas"},
		},
		"scale-down disabled": {
			policy: valid(func(p *Policy) { p.ScaleDown = Rules{StabilizationWindow: noWindow, Select: SelectDisabled} }),
			in:     ready(0, 9, 300),
			want: Decision{Desired: 9,
				Reason: "queue depth 300 over target 100/replica → 3 replicas; scale-down disabled: holding 9 replicas"},
		},
		"a depth too large for int32 saturates": {
			policy: valid(nil),
			in:     ready(0, 10, 1<<62),
			want: Decision{Desired: 10,
				Reason: "queue depth 4611686018427387904 over target 100/replica → 2147483647 replicas, capped at maxReplicas 10: holding 10 replicas"},
		},
		"a negative depth is a failed read": {
			policy: valid(nil),
			in:     ready(0, 3, -5),
			want:   Decision{Desired: 3, Reason: "queue depth -5 is negative: holding 3 replicas (1 failed reads in a row, no fallback set)"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			replay(t, tc.policy, []step{{in: tc.in, want: tc.want}})
		})
	}
}

func TestRecommendFailedReads(t *testing.T) {
	t.Parallel()
	s := time.Second
	withFallback := func(n int32) func(*Policy) {
		return func(p *Policy) { p.MinReplicas = 0; p.FallbackReplicas = ptr(n) }
	}
	cases := map[string]struct {
		policy Policy
		steps  []step
	}{
		"hold, then fallback, then a success resets the count": {
			policy: valid(withFallback(5)),
			steps: []step{
				{failed(0, 3), Decision{Desired: 3, Reason: "NATS unreachable: holding 3 replicas (1 of 3 failed reads before fallback)"}},
				{failed(15*s, 3), Decision{Desired: 3, Reason: "NATS unreachable: holding 3 replicas (2 of 3 failed reads before fallback)"}},
				{failed(30*s, 3), Decision{Desired: 5, Direction: Up, Fallback: true,
					Reason: "NATS unreachable: 3 failed reads in a row, fallback to 5 replicas: scale up 3 → 5"}},
				{failed(45*s, 5), Decision{Desired: 5, Fallback: true,
					Reason: "NATS unreachable: 4 failed reads in a row, fallback to 5 replicas"}},
				{ready(60*s, 5, 500), Decision{Desired: 5, Reason: "queue depth 500 over target 100/replica → 5 replicas: holding 5 replicas"}},
				{failed(75*s, 5), Decision{Desired: 5, Reason: "NATS unreachable: holding 5 replicas (1 of 3 failed reads before fallback)"}},
			},
		},
		"fallback applies from zero replicas": {
			policy: valid(withFallback(2)),
			steps: []step{
				{failed(0, 0), Decision{Desired: 0, Reason: "NATS unreachable: holding 0 replicas (1 of 3 failed reads before fallback)"}},
				{failed(15*s, 0), Decision{Desired: 0, Reason: "NATS unreachable: holding 0 replicas (2 of 3 failed reads before fallback)"}},
				{failed(30*s, 0), Decision{Desired: 2, Direction: Up, Fallback: true,
					Reason: "NATS unreachable: 3 failed reads in a row, fallback to 2 replicas: scale up 0 → 2"}},
			},
		},
		"fallback may also shrink the pool": {
			policy: valid(func(p *Policy) { p.FallbackReplicas = ptr[int32](2); p.FailureThreshold = 1 }),
			steps: []step{
				{failed(0, 8), Decision{Desired: 2, Direction: Down, Fallback: true,
					Reason: "NATS unreachable: 1 failed reads in a row, fallback to 2 replicas: scale down 8 → 2"}},
			},
		},
		"without a fallback the pool holds, never zero nor max": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0 }),
			steps: []step{
				{failed(0, 4), Decision{Desired: 4, Reason: "NATS unreachable: holding 4 replicas (1 failed reads in a row, no fallback set)"}},
				{failed(15*s, 4), Decision{Desired: 4, Reason: "NATS unreachable: holding 4 replicas (2 failed reads in a row, no fallback set)"}},
				{failed(30*s, 4), Decision{Desired: 4, Reason: "NATS unreachable: holding 4 replicas (3 failed reads in a row, no fallback set)"}},
				{failed(45*s, 4), Decision{Desired: 4, Reason: "NATS unreachable: holding 4 replicas (4 failed reads in a row, no fallback set)"}},
			},
		},
		"failed reads are not recommendations": {
			// Were the failed read at 30s remembered as any size, the scale-down at 61s would be
			// held by it: the window then reaches back to 1s.
			policy: valid(func(p *Policy) { p.MinReplicas = 0; p.ScaleDown.StabilizationWindow = ptr(time.Minute) }),
			steps: []step{
				{ready(0, 10, 1000), Decision{Desired: 10, Reason: "queue depth 1000 over target 100/replica → 10 replicas: holding 10 replicas"}},
				{failed(30*s, 10), Decision{Desired: 10, Reason: "NATS unreachable: holding 10 replicas (1 failed reads in a row, no fallback set)"}},
				{ready(61*s, 10, 0), Decision{Desired: 0, Direction: Down,
					Reason: "queue depth 0 over target 100/replica → 0 replicas: scale down 10 → 0"}},
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			replay(t, tc.policy, tc.steps)
		})
	}
}

// change is one resize in a simulation: when, and from what size to what size.
type change struct {
	At       time.Duration
	From, To int32
}

// simulate reads lag(t) every interval until the end, applying each Decision at once with every
// pod ready, and returns the resizes.
func simulate(t *testing.T, p Policy, start int32, every, end time.Duration, lag func(time.Duration) int64) []change {
	t.Helper()
	r, err := New(p)
	if err != nil {
		t.Fatal(err)
	}
	var out []change
	current := start
	for now := time.Duration(0); now <= end; now += every {
		d := r.Recommend(ready(now, current, lag(now)))
		if d.Desired != current {
			out = append(out, change{At: now, From: current, To: d.Desired})
		}
		current = d.Desired
	}
	return out
}

func constant(lag int64) func(time.Duration) int64 { return func(time.Duration) int64 { return lag } }

func TestRecommendOverTime(t *testing.T) {
	t.Parallel()
	s, m := time.Second, time.Minute
	noWindow := ptr(time.Duration(0))
	cases := map[string]struct {
		policy Policy
		start  int32
		end    time.Duration
		lag    func(time.Duration) int64
		want   []change
	}{
		// The HPA documentation's example: "scaleDown: 4 Pods or 10 Percent per 60s" from 80
		// replicas to 10, with the default 300 s window. Percent wins while it allows more than 4.
		"HPA docs: scale-down 4 pods or 10 percent per minute from 80": {
			policy: valid(func(p *Policy) {
				p.MaxReplicas = 100
				p.ScaleDown.Policies = []RatePolicy{
					{Type: Pods, Value: 4, Period: m},
					{Type: Percent, Value: 10, Period: m},
				}
			}),
			start: 80, end: 20 * m, lag: constant(1000),
			want: []change{
				{5 * m, 80, 72}, {6 * m, 72, 64}, {7 * m, 64, 57}, {8 * m, 57, 51}, {9 * m, 51, 45},
				{10 * m, 45, 40}, {11 * m, 40, 36}, {12 * m, 36, 32}, {13 * m, 32, 28}, {14 * m, 28, 24},
				{15 * m, 24, 20}, {16 * m, 20, 16}, {17 * m, 16, 12}, {18 * m, 12, 10},
			},
		},
		"HPA docs: scale-down policies with selectPolicy Min": {
			policy: valid(func(p *Policy) {
				p.MaxReplicas = 100
				p.ScaleDown = Rules{StabilizationWindow: noWindow, Select: SelectMin, Policies: []RatePolicy{
					{Type: Pods, Value: 4, Period: m},
					{Type: Percent, Value: 10, Period: m},
				}}
			}),
			start: 20, end: 3 * m, lag: constant(1000),
			want: []change{{0, 20, 18}, {1 * m, 18, 16}, {2 * m, 16, 14}, {3 * m, 14, 12}},
		},
		// The HPA defaults: 100 % or 4 pods per 15 s, whichever is more.
		"HPA docs: scale-up 100 percent or 4 pods per 15s, selectPolicy Max": {
			policy: valid(func(p *Policy) { p.MaxReplicas = 100 }),
			start:  1, end: m, lag: constant(10000),
			want: []change{{0, 1, 5}, {15 * s, 5, 10}, {30 * s, 10, 20}, {45 * s, 20, 40}, {60 * s, 40, 80}},
		},
		"scale-up 100 percent or 4 pods per 15s, selectPolicy Min": {
			policy: valid(func(p *Policy) { p.MaxReplicas = 100; p.ScaleUp.Select = SelectMin }),
			start:  1, end: m, lag: constant(10000),
			want: []change{{0, 1, 2}, {15 * s, 2, 4}, {30 * s, 4, 8}, {45 * s, 8, 12}, {60 * s, 12, 16}},
		},
		"a Pods policy counts every step since its period began": {
			policy: valid(func(p *Policy) {
				p.MaxReplicas = 100
				p.ScaleUp.Policies = []RatePolicy{{Type: Pods, Value: 4, Period: m}}
			}),
			start: 2, end: 2 * m, lag: func(now time.Duration) int64 { return 300 + int64(now/s)*10 },
			// The period slides: no 60 s span adds more than 4 pods, however the steps fall.
			want: []change{
				{0, 2, 3}, {15 * s, 3, 5}, {30 * s, 5, 6}, // 4 in the first minute: full
				{60 * s, 6, 7}, {75 * s, 7, 9}, {90 * s, 9, 10}, // each as a step of the first leaves the period
				{120 * s, 10, 11},
			},
		},
		// The HPA documentation's default scale-down: the highest recommendation of the last
		// 300 s wins, so a drop waits five minutes.
		"HPA docs: 300 s scale-down stabilization": {
			policy: valid(nil),
			start:  10, end: 10 * m,
			lag: func(now time.Duration) int64 {
				if now < 2*m {
					return 1000
				}
				return 300
			},
			// Five minutes after the last high reading, at 1m45s.
			want: []change{{6*m + 45*s, 10, 3}},
		},
		"scale-up stabilization takes the lowest recommendation in its window": {
			policy: valid(func(p *Policy) { p.ScaleUp.StabilizationWindow = ptr(m) }),
			start:  3, end: 3 * m,
			lag: func(now time.Duration) int64 {
				if now < m {
					return 300
				}
				return 900
			},
			// A minute after the last low reading, at 45s; then the rate policies.
			want: []change{{m + 45*s, 3, 7}, {2 * m, 7, 9}},
		},
		"scale to zero only after a whole window of an empty queue": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0 }),
			start:  2, end: 15 * m,
			lag: func(now time.Duration) int64 {
				switch {
				case now == 3*m: // one event passes through
					return 1
				case now >= 12*m: // then a burst
					return 1000
				}
				return 0
			},
			// The one event keeps one worker until five minutes after it; the burst then grows
			// the pool from zero by the default 4 pods.
			want: []change{{5 * m, 2, 1}, {8 * m, 1, 0}, {12 * m, 0, 4}, {12*m + 15*s, 4, 8}, {12*m + 30*s, 8, 10}},
		},
		"leaving zero is not held by a scale-up window that remembers zeros": {
			policy: valid(func(p *Policy) { p.MinReplicas = 0; p.ScaleUp.StabilizationWindow = ptr(m) }),
			start:  0, end: 2 * m,
			lag: func(now time.Duration) int64 {
				if now < 30*s {
					return 0
				}
				return 500
			},
			// One replica as soon as the depth is over the threshold; all five a minute after
			// the last empty reading, at 15s.
			want: []change{{30 * s, 0, 1}, {75 * s, 1, 5}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := simulate(t, tc.policy, tc.start, 15*s, tc.end, tc.lag)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resizes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRecommendDoesNotFlap drives a square wave of queue depth around the target and counts what
// the pool does: the scale-down window must absorb every wave shorter than itself.
func TestRecommendDoesNotFlap(t *testing.T) {
	t.Parallel()
	m := time.Minute
	// square alternates between high and low every half period, starting high.
	square := func(high, low int64, period time.Duration) func(time.Duration) int64 {
		return func(now time.Duration) int64 {
			if now%period < period/2 {
				return high
			}
			return low
		}
	}
	type summary struct{ Ups, Downs, DirectionChanges int }
	cases := map[string]struct {
		lag  func(time.Duration) int64
		want summary
	}{
		// 2 minutes per cycle: the low half never fills a 5-minute window.
		"fast wave": {lag: square(1500, 500, 2*m), want: summary{Ups: 1}},
		// 20 minutes per cycle: each low half outlasts the window once; each high half grows the
		// pool in two steps, as 100 % per 15 s allows.
		"slow wave": {lag: square(1500, 500, 20*m), want: summary{Ups: 6, Downs: 3, DirectionChanges: 6}},
		// ±5 % around the target: inside the tolerance, nothing moves at all.
		"wave inside the tolerance": {lag: square(1050, 950, 2*m), want: summary{}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			changes := simulate(t, valid(func(p *Policy) { p.MaxReplicas = 20 }), 10, 15*time.Second, time.Hour, tc.lag)
			var got summary
			var lastDown time.Duration = -time.Hour
			for i, c := range changes {
				up := c.To > c.From
				if up {
					got.Ups++
				} else {
					got.Downs++
					if c.At-lastDown < DefaultScaleDownWindow {
						t.Errorf("scale-downs at %v and %v, within one stabilization window", lastDown, c.At)
					}
					lastDown = c.At
				}
				if i > 0 && up != (changes[i-1].To > changes[i-1].From) {
					got.DirectionChanges++
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("resizes %v (-want +got):\n%s", changes, diff)
			}
		})
	}
}

// TestHistoryIsPruned checks that a long-running pool remembers only what its windows can read,
// which is what keeps each call O(window) and a warm call free of allocations.
func TestHistoryIsPruned(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		policy               Policy
		wantRecs, wantEvents int
	}{
		// 5-minute scale-down window at a 15 s poll: the 19 readings after the cutoff, and the
		// 15 s periods see only the latest change.
		"defaults": {policy: valid(func(p *Policy) { p.MaxReplicas = 100 }), wantRecs: 19, wantEvents: 0},
		"no windows": {
			policy: valid(func(p *Policy) {
				p.MaxReplicas = 100
				p.ScaleDown.StabilizationWindow = ptr(time.Duration(0))
			}),
			wantRecs: 0, wantEvents: 0,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := New(tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			current := int32(10)
			for i := range 1000 {
				// Alternate between two depths far apart, so that changes happen too.
				lag := int64(1000 + 4000*(i/40%2))
				current = r.Recommend(ready(time.Duration(i)*15*time.Second, current, lag)).Desired
			}
			r.prune(at(1000 * 15 * time.Second))
			got := [2]int{len(r.recs), len(r.events)}
			if diff := cmp.Diff([2]int{tc.wantRecs, tc.wantEvents}, got); diff != "" {
				t.Errorf("recommendations and events kept (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewCopiesFallback(t *testing.T) {
	fallback := int32(2)
	r, err := New(valid(func(p *Policy) { p.FallbackReplicas = &fallback; p.FailureThreshold = 1 }))
	if err != nil {
		t.Fatal(err)
	}
	fallback = 1000
	if got := r.Recommend(failed(0, 5)).Desired; got != 2 {
		t.Errorf("after the caller changed its fallback variable, a failed read recommends %d replicas; want 2", got)
	}
}

func TestDirectionString(t *testing.T) {
	got := []string{None.String(), Up.String(), Down.String()}
	if diff := cmp.Diff([]string{"none", "up", "down"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestRecommendInvariants replays seeded random readings, with failures, pods starting and clock
// gaps, and checks what must hold whatever the sequence.
func TestRecommendInvariants(t *testing.T) {
	t.Parallel()
	cases := map[string]Policy{
		"defaults":      valid(nil),
		"scale to zero": valid(func(p *Policy) { p.MinReplicas = 0; p.ActivationThreshold = 50 }),
		"fallback and drain": valid(func(p *Policy) {
			p.MinReplicas, p.MaxReplicas = 2, 40
			p.FallbackReplicas = ptr[int32](6)
			p.DrainTarget = time.Minute
		}),
		"slow and Min": valid(func(p *Policy) {
			p.MaxReplicas = 200
			p.ScaleUp = Rules{StabilizationWindow: ptr(time.Minute), Select: SelectMin}
			p.ScaleDown.Policies = []RatePolicy{{Type: Pods, Value: 1, Period: time.Minute}}
		}),
	}
	for name, p := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := New(p)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			now, current := time.Duration(0), p.MinReplicas
			for i := range 5000 {
				now += time.Duration(1+rng.IntN(30)) * time.Second
				in := Input{Now: at(now), Current: current, Ready: int32(rng.IntN(int(current) + 1)), Lag: rng.Int64N(20000)}
				if rng.IntN(10) == 0 {
					in.LagErr = errNATS
				}
				if rng.IntN(2) == 0 {
					in.Throughput = rng.Float64() * 50
				}
				d := r.Recommend(in)
				if d.Desired < p.MinReplicas || d.Desired > p.MaxReplicas {
					t.Fatalf("reading %d %+v: desired %d outside [%d, %d]", i, in, d.Desired, p.MinReplicas, p.MaxReplicas)
				}
				wantDir := None
				if d.Desired > current {
					wantDir = Up
				} else if d.Desired < current {
					wantDir = Down
				}
				if d.Direction != wantDir || d.Reason == "" {
					t.Fatalf("reading %d %+v: %+v does not say its direction or reason", i, in, d)
				}
				if in.LagErr != nil && !d.Fallback && d.Desired != current {
					t.Fatalf("reading %d: a failed read without fallback moved %d to %d", i, current, d.Desired)
				}
				current = d.Desired
			}
		})
	}
}
