package autoscale

import (
	"errors"
	"math"
	"time"
)

// Input is one reading of the queue and the pool.
type Input struct {
	// Now is when the reading was taken; the Recommender has no clock of its own. Readings come
	// in time order, between the years 1678 and 2262 (what Unix nanoseconds can hold).
	Now time.Time
	// Current is the pool's replica count (the scale subresource's status); Ready counts the pods
	// passing readiness. Pods not ready yet serve nothing, so a scale-up does not count them as
	// capacity.
	Current, Ready int32
	// Lag is the queue depth: the consumer's pending plus unacknowledged events.
	Lag int64
	// LagErr is why Lag could not be read (NATS unreachable, consumer missing); when set, Lag is
	// ignored rather than taken as 0 or as infinite.
	LagErr error
	// Throughput is the measured events per second of one ready replica; 0 (or any value that
	// is not a positive finite number) means unknown. Only Policy.DrainTarget reads it.
	Throughput float64
}

// Direction is which way a Decision moves the pool.
type Direction int8

const (
	// None keeps the current size.
	None Direction = iota
	// Up adds replicas.
	Up
	// Down removes replicas.
	Down
)

// String returns "none", "up" or "down", for logs and metrics labels.
func (d Direction) String() string {
	switch d {
	case Up:
		return "up"
	case Down:
		return "down"
	}
	return "none"
}

// Decision is a recommended size and why.
type Decision struct {
	// Desired is the replica count to set.
	Desired int32
	// Reason explains Desired to a human reading the pipeline's status or events.
	Reason string
	// Direction compares Desired with the input's Current.
	Direction Direction
	// Fallback is true when Desired is Policy.FallbackReplicas because the depth could not be read.
	Fallback bool
	// Bounds is true when Desired is the nearest of MinReplicas and MaxReplicas because the
	// current size was outside them (rule 2), whatever the depth.
	Bounds bool
}

// Recommender turns readings into Decisions for one pool. It remembers its recommendations, for
// stabilization, and the changes it decided, for rate policies. Like the HPA it counts its own
// decisions rather than observed changes, so a Decision the caller fails to apply still uses up
// its period's allowance. It is not safe for concurrent use: one pool has one reconcile at a time.
type Recommender struct {
	p        Policy
	up, down rules

	// recWindow and eventWindow are the longest windows that read recs and events: anything
	// older can never matter again and is pruned, which keeps each call O(window).
	recWindow, eventWindow time.Duration

	// drainText is DrainTarget.String(), kept so that writing a reason does not allocate.
	drainText string

	recs    []recommendation
	events  []scaleEvent
	started bool
	// failures counts failed reads in a row.
	failures int

	// text and reason let a warm call that explains itself as the previous one did reuse that
	// string instead of allocating it again.
	text   text
	reason string
}

// recommendation is one stabilization sample: what the depth asked for, before stabilization.
// Times are Unix nanoseconds, which compare several times faster than time.Time in the loops
// that read a whole window on every call.
type recommendation struct {
	at       int64
	replicas int32
}

// scaleEvent is one change this Recommender decided: change is positive when it added replicas.
type scaleEvent struct {
	at     int64
	change int32
}

// New validates p, applies its defaults and returns a Recommender with an empty history. The error
// lists every invalid field.
func New(p Policy) (*Recommender, error) {
	verr := p.validate()
	up, uerr := p.ScaleUp.resolve("scaleUp", 0, defaultScaleUpPolicies)
	down, derr := p.ScaleDown.resolve("scaleDown", DefaultScaleDownWindow, defaultScaleDownPolicies)
	if err := errors.Join(verr, uerr, derr); err != nil {
		return nil, err
	}
	if f := p.FallbackReplicas; f != nil {
		// Copied, as the policies are, so that the caller cannot move it out of bounds later.
		own := *f
		p.FallbackReplicas = &own
	}
	// Resolved into up and down; cleared so that nothing reads the unresolved rules by mistake.
	p.ScaleUp, p.ScaleDown = Rules{}, Rules{}
	r := &Recommender{p: p, up: up, down: down, recWindow: max(up.window, down.window), drainText: p.DrainTarget.String()}
	for _, rp := range append(append([]RatePolicy(nil), up.policies...), down.policies...) {
		r.eventWindow = max(r.eventWindow, rp.Period)
	}
	return r, nil
}

// Recommend returns the size the pool should have now; see the package documentation for the rules
// in the order they apply.
func (r *Recommender) Recommend(in Input) Decision {
	if !r.started {
		// Counting the current size as a recommendation made now keeps a restarted operator from
		// scaling down (or up, with a scale-up window) before it has watched a full window; the HPA
		// seeds its history the same way.
		r.recs = append(r.recs, recommendation{at: in.Now.UnixNano(), replicas: in.Current})
		r.started = true
	}
	r.prune(in.Now)

	readOK := in.LagErr == nil && in.Lag >= 0
	if readOK {
		r.failures = 0
	} else if r.failures < math.MaxInt32 {
		r.failures++
	}
	switch {
	case !readOK && r.failures >= r.p.FailureThreshold && r.p.FallbackReplicas != nil:
		return r.fallback(in)
	case in.Current < r.p.MinReplicas || in.Current > r.p.MaxReplicas:
		return r.toBounds(in)
	case !readOK:
		return r.hold(in)
	case in.Current == 0 && in.Lag <= r.p.ActivationThreshold:
		// Recorded as zero so that the scale-up window, if any, sees the pool idle.
		r.recs = append(r.recs, recommendation{at: in.Now.UnixNano(), replicas: 0})
		t := r.text.reset().s("queue depth ").i(in.Lag).s(" not over activation threshold ").i(r.p.ActivationThreshold).s(": staying at zero replicas")
		return r.decide(in, 0, t, false)
	}
	return r.scale(in)
}

// fallback goes to FallbackReplicas without stabilization or rate limits: blind, the recommender
// has nothing to stabilize, and the fallback size is the user's own answer for that case.
func (r *Recommender) fallback(in Input) Decision {
	t := r.text.reset().readFailure(in).s(": ").i(int64(r.failures)).s(" failed reads in a row, fallback to ").n(*r.p.FallbackReplicas)
	return r.decide(in, *r.p.FallbackReplicas, t, true)
}

// toBounds moves a pool outside [MinReplicas, MaxReplicas] to the nearest bound at once, as the
// HPA does, whatever the depth or its readability.
func (r *Recommender) toBounds(in Input) Decision {
	t := r.text.reset().s("current ").n(in.Current).s(" ")
	want := r.p.MaxReplicas
	if in.Current < r.p.MinReplicas {
		want = r.p.MinReplicas
		t.s("below minReplicas ")
	} else {
		t.s("above maxReplicas ")
	}
	t.i(int64(want))
	d := r.decide(in, want, t, false)
	d.Bounds = true
	return d
}

// hold keeps the current size after a failed read: zero would stop a pool with a backlog, and
// the maximum is KEDA's "missing consumer scaled to max" failure.
func (r *Recommender) hold(in Input) Decision {
	t := r.text.reset().readFailure(in).s(": holding ").n(in.Current).s(" (")
	if r.p.FallbackReplicas != nil {
		t.i(int64(r.failures)).s(" of ").i(int64(r.p.FailureThreshold)).s(" failed reads before fallback)")
	} else {
		t.i(int64(r.failures)).s(" failed reads in a row, no fallback set)")
	}
	return r.decide(in, in.Current, t, false)
}

// scale applies rules 4 to 9 of the package documentation to a successful reading.
func (r *Recommender) scale(in Input) Decision {
	t := r.text.reset()
	need := r.need(in, t)
	rec := ceilReplicas(need)
	t.s(" → ").n(rec)

	if in.Current > 0 && rec != in.Current {
		capacity := in.Current
		if need > float64(in.Current) {
			capacity = max(min(in.Ready, in.Current), 0)
		}
		if math.Abs(need/float64(capacity)-1) <= r.p.Tolerance {
			t.s(", within tolerance ").f(r.p.Tolerance, -1).s(" of ").i(int64(capacity))
			if capacity < in.Current {
				t.s(" ready")
			}
			rec = in.Current
		}
	}
	switch {
	case rec > r.p.MaxReplicas:
		rec = r.p.MaxReplicas
		t.s(", capped at maxReplicas ").i(int64(rec))
	case rec < r.p.MinReplicas:
		rec = r.p.MinReplicas
		t.s(", raised to minReplicas ").i(int64(rec))
	}

	want := r.stabilize(in, rec, t)
	r.recs = append(r.recs, recommendation{at: in.Now.UnixNano(), replicas: rec})
	if in.Current == 0 && want == 0 {
		// Step 3 let us through, so the depth is over the activation threshold: leave zero now.
		want = 1
		t.s(", but leaving zero: depth over activation threshold ").i(r.p.ActivationThreshold)
	}
	want = r.limitRate(in, want, t)
	if want == in.Current {
		t.s(": holding ").n(want)
	}
	return r.decide(in, want, t, false)
}

// need is how many replicas the depth asks for, unrounded, so that tolerance compares like the
// HPA's usage ratio. It writes how it was computed into t.
func (r *Recommender) need(in Input, t *text) float64 {
	t.s("queue depth ").i(in.Lag)
	tp := in.Throughput
	if r.p.DrainTarget > 0 && tp > 0 && !math.IsInf(tp, 0) {
		t.s(" to drain in ").s(r.drainText).s(" at ").f(tp, 3).s(" events/s per replica")
		return float64(in.Lag) / (tp * r.p.DrainTarget.Seconds())
	}
	t.s(" over target ").i(r.p.TargetPerReplica).s("/replica")
	if r.p.DrainTarget > 0 {
		t.s(" (throughput unknown)")
	}
	return float64(in.Lag) / float64(r.p.TargetPerReplica)
}

// stabilize bounds rec by the window of each direction, from the history before this reading.
func (r *Recommender) stabilize(in Input, rec int32, t *text) int32 {
	upRec, downRec := rec, rec
	upCut, downCut := in.Now.Add(-r.up.window).UnixNano(), in.Now.Add(-r.down.window).UnixNano()
	for _, s := range r.recs {
		if s.at > upCut {
			upRec = min(upRec, s.replicas)
		}
		if s.at > downCut {
			downRec = max(downRec, s.replicas)
		}
	}
	want := min(max(in.Current, upRec), downRec)
	switch {
	case want > rec:
		t.s("; scale-down stabilized: highest recommendation in the last ").s(r.down.windowText).s(" is ").i(int64(downRec))
	case want < rec:
		t.s("; scale-up stabilized: lowest recommendation in the last ").s(r.up.windowText).s(" is ").i(int64(upRec))
	}
	return want
}

// limitRate applies the rate policies of the direction want moves in.
func (r *Recommender) limitRate(in Input, want int32, t *text) int32 {
	cur := in.Current
	switch {
	case want > cur:
		limit := cur
		if r.up.sel != SelectDisabled {
			limit = max(r.rateLimit(in, r.up, +1), cur)
			// A percentage of zero is zero: without this a Percent-only policy never leaves zero.
			limit = max(limit, 1)
		}
		if want > limit {
			r.rateText(t, "; scale-up", r.up.sel, limit)
			return limit
		}
	case want < cur:
		limit := cur
		if r.down.sel != SelectDisabled {
			limit = min(r.rateLimit(in, r.down, -1), cur)
		}
		if want < limit {
			r.rateText(t, "; scale-down", r.down.sel, limit)
			return limit
		}
	}
	return want
}

// rateText says which limit held want back; Disabled has no number to give.
func (r *Recommender) rateText(t *text, dir string, sel Select, limit int32) {
	t.s(dir)
	if sel == SelectDisabled {
		t.s(" disabled")
		return
	}
	t.s(" limited to ").i(int64(limit)).s(" by rate policies")
}

// rateLimit is the furthest the pool may go in direction sign (+1 or −1) under rl's policies.
// Each policy counts from the size at the start of its period, rebuilt from this Recommender's
// own scale events, so that a run of small steps cannot add up to more than the policy allows.
func (r *Recommender) rateLimit(in Input, rl rules, sign int64) int32 {
	var limit int64
	for i, p := range rl.policies {
		start := int64(in.Current)
		cut := in.Now.Add(-p.Period).UnixNano()
		for _, e := range r.events {
			if e.at > cut {
				start -= int64(e.change)
			}
		}
		start = max(start, 0)
		step := int64(p.Value)
		if p.Type == Percent {
			// Rounded up, as the HPA does, so that a small pool can still move; computed in
			// integers so that 10 % of 80 is exactly 8, where floating point may say 7.
			step = (start*int64(p.Value) + 99) / 100
		}
		proposed := start + sign*step
		// Max takes the policy allowing the biggest change, Min the smallest, in either direction.
		switch {
		case i == 0,
			rl.sel == SelectMax && sign*proposed > sign*limit,
			rl.sel == SelectMin && sign*proposed < sign*limit:
			limit = proposed
		}
	}
	return int32(min(max(limit, math.MinInt32), math.MaxInt32))
}

// decide records a change as a scale event, for the rate policies, and builds the Decision. A
// change ends the reason with "scale up 3 → 5"; a hold leaves the ending to the caller, who knows
// best why the pool keeps its size.
func (r *Recommender) decide(in Input, want int32, t *text, fallback bool) Decision {
	d := Decision{Desired: want, Fallback: fallback}
	switch {
	case want > in.Current:
		d.Direction = Up
		t.s(": scale up ")
	case want < in.Current:
		d.Direction = Down
		t.s(": scale down ")
	}
	if d.Direction != None {
		t.i(int64(in.Current)).s(" → ").i(int64(want))
		r.events = append(r.events, scaleEvent{at: in.Now.UnixNano(), change: want - in.Current})
	}
	d.Reason = r.text.String(&r.reason)
	return d
}

// prune drops the readings and events no window can read any more. Both are appended in time
// order, so the old ones lead; should the caller's clock step back, a stray entry only lives a
// little longer, as every reader still checks its time. Compacting in place keeps a warm history
// from growing or allocating.
func (r *Recommender) prune(now time.Time) {
	recCut, eventCut := now.Add(-r.recWindow).UnixNano(), now.Add(-r.eventWindow).UnixNano()
	old := 0
	for old < len(r.recs) && r.recs[old].at <= recCut {
		old++
	}
	r.recs = r.recs[:copy(r.recs, r.recs[old:])]
	old = 0
	for old < len(r.events) && r.events[old].at <= eventCut {
		old++
	}
	r.events = r.events[:copy(r.events, r.events[old:])]
}

// ceilReplicas rounds need up to whole replicas, saturating so that an absurd depth cannot
// overflow int32.
func ceilReplicas(need float64) int32 {
	if !(need < math.MaxInt32) { // also catches NaN, which cannot arise but must not become 0
		return math.MaxInt32
	}
	return int32(math.Ceil(need))
}
