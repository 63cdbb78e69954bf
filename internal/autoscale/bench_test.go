package autoscale

import (
	"testing"
	"time"
)

// BenchmarkRecommend runs a pool at a 2 s poll with the default 5-minute window, so that each call
// reads and prunes a warm history of 150 recommendations.
func BenchmarkRecommend(b *testing.B) {
	cases := map[string]func(i int) int64{
		// The same depth every poll: the reason repeats and is reused.
		"steady": func(int) int64 { return 1000 },
		// A new depth every poll: the reason is new text each time.
		"varying": func(i int) int64 { return 800 + int64(i%400) },
	}
	for name, lag := range cases {
		b.Run(name, func(b *testing.B) {
			r, err := New(Policy{MinReplicas: 1, MaxReplicas: 50, TargetPerReplica: 100})
			if err != nil {
				b.Fatal(err)
			}
			current := int32(10)
			step := func(i int) {
				d := r.Recommend(Input{Now: t0.Add(time.Duration(i) * 2 * time.Second), Current: current, Ready: current, Lag: lag(i)})
				current = d.Desired
			}
			for i := range 1000 { // warm: the history is full and its slices have grown
				step(i)
			}
			b.ReportAllocs()
			i := 1000
			for b.Loop() {
				step(i)
				i++
			}
		})
	}
}
