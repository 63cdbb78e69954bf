package report

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactQuantile is the value of rank q·(n−1), rounded down, in sorted.
func exactQuantile(sorted []float64, q float64) float64 {
	return sorted[int(q*float64(len(sorted)-1))]
}

// withinAccuracy reports whether got is the value want within RelativeAccuracy (values below
// minIndexable count as zero).
func withinAccuracy(got, want float64) bool {
	if math.Abs(want) < minIndexable {
		return got == 0
	}
	return math.Abs(got-want) <= RelativeAccuracy*math.Abs(want)*(1+1e-9)
}

var quantiles = []float64{0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1}

func TestSketchQuantilesAreWithinTheRelativeAccuracy(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	cases := map[string]func() float64{
		"uniform risks":       rng.Float64,
		"beta-like risks":     func() float64 { return math.Pow(rng.Float64(), 4) },
		"normal around zero":  rng.NormFloat64,
		"lognormal, wide":     func() float64 { return math.Exp(5 * rng.NormFloat64()) },
		"zeros and negatives": func() float64 { return float64(rng.IntN(3)-1) * rng.Float64() },
		"one value":           func() float64 { return 0.42 },
	}
	for name, gen := range cases {
		t.Run(name, func(t *testing.T) {
			for _, n := range []int{1, 2, 17, 1000, 50_000} {
				var s Sketch
				data := make([]float64, n)
				for i := range data {
					data[i] = gen()
					s.Add(data[i])
				}
				slices.Sort(data)
				if s.Count() != uint64(n) {
					t.Fatalf("n=%d: Count() = %d", n, s.Count())
				}
				for _, q := range quantiles {
					if got, want := s.Quantile(q), exactQuantile(data, q); !withinAccuracy(got, want) {
						t.Errorf("n=%d q=%v: sketch %v, exact %v: more than %v apart", n, q, got, want, RelativeAccuracy)
					}
				}
			}
		})
	}
}

func TestSketchMergeIsTheSketchOfTheUnion(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	var union Sketch
	parts := make([]Sketch, 7)
	for i := range 20_000 {
		v := rng.NormFloat64() * math.Pow(10, float64(rng.IntN(6)-3))
		union.Add(v)
		parts[i%len(parts)].Add(v)
	}
	var merged Sketch
	for i := range parts {
		merged.Merge(&parts[i])
	}
	if !slices.Equal(merged.pos, union.pos) || !slices.Equal(merged.neg, union.neg) || merged.zero != union.zero {
		t.Fatal("the merge of the parts differs from the sketch of the union")
	}
	// Merging into an empty sketch must not alias the source's bins.
	var copied Sketch
	copied.Merge(&parts[0])
	copied.Add(1)
	if parts[0].Count()+1 != copied.Count() {
		t.Fatal("adding to a merged copy changed the source")
	}
}

func TestSketchEmptyAndOutOfRange(t *testing.T) {
	t.Parallel()
	var s Sketch
	if !math.IsNaN(s.Quantile(0.5)) {
		t.Error("an empty sketch has a median")
	}
	s.Add(1)
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if !math.IsNaN(s.Quantile(q)) {
			t.Errorf("Quantile(%v) is a number", q)
		}
	}
}

func TestSketchEncodingRoundTrips(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	var s Sketch
	for range 5000 {
		s.Add(rng.NormFloat64() * 1e6)
		s.Add(0)
		s.Add(math.MaxFloat64)
		s.Add(minIndexable)
	}
	enc := s.AppendBinary([]byte("prefix"))
	got, rest, err := decodeSketch(append(enc[len("prefix"):], 'x'))
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "x" {
		t.Errorf("rest = %q, want the byte after the sketch", rest)
	}
	if !slices.Equal(got.pos, s.pos) || !slices.Equal(got.neg, s.neg) || got.zero != s.zero {
		t.Fatal("decoded sketch differs")
	}
}

// FuzzDecodeSketch: any input is refused or decodes to a sketch that encodes back to the same
// bytes and answers quantiles without panicking.
func FuzzDecodeSketch(f *testing.F) {
	var s Sketch
	for _, v := range []float64{-3, 0, 0.5, 0.5, 0.9, 1e300} {
		s.Add(v)
	}
	f.Add(s.AppendBinary(nil))
	f.Add([]byte{1, 0, 0, 0})
	f.Add([]byte{1, 0, 1, 1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, rest, err := decodeSketch(b)
		if err != nil {
			return
		}
		enc := got.AppendBinary(nil)
		if string(enc) != string(b[:len(b)-len(rest)]) {
			t.Fatalf("re-encoding %x gives %x", b[:len(b)-len(rest)], enc)
		}
		_ = got.Quantile(0.5)
		_ = got.Quantile(1)
	})
}
