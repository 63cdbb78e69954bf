package report

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// RelativeAccuracy is the sketch's guarantee: a quantile it returns is within 1 % of the value
// of the same rank in the data (for values of magnitude at least minIndexable; smaller ones are
// counted as zero).
const RelativeAccuracy = 0.01

var (
	gamma    = (1 + RelativeAccuracy) / (1 - RelativeAccuracy)
	logGamma = math.Log(gamma)
)

const (
	// minIndexable is the smallest magnitude given a bin of its own; below it a value counts as
	// zero (risks are probabilities; 1e-9 is no risk).
	minIndexable = 1e-9
	// Bin indexes of finite float64 magnitudes from minIndexable up lie in [minIndex, maxIndex];
	// the decoder refuses others.
	minIndex = -1100
	maxIndex = 36000
)

// bin is one bucket of a sketch's logarithmic scale and how many values fell into it.
type bin struct {
	index int32
	count uint64
}

// Sketch is a mergeable quantile sketch in the manner of DDSketch: values fall into bins whose
// bounds grow geometrically by gamma, so that any value in a bin is within RelativeAccuracy of
// the bin's representative. Bins are sparse, sorted by index: a sketch of values that cluster
// takes a few dozen bytes. Merging adds bin counts, so a merge is exactly the sketch of the
// union. Negative values have bins of their own; zero (and magnitudes below minIndexable) a
// count.
type Sketch struct {
	pos, neg []bin
	zero     uint64
}

// index is the bin of magnitude v >= minIndexable.
func index(v float64) int32 { return int32(math.Ceil(math.Log(v) / logGamma)) }

// value is the representative of bin i: the point of (gamma^(i-1), gamma^i] whose relative
// distance to both ends is RelativeAccuracy.
func value(i int32) float64 { return 2 * math.Pow(gamma, float64(i)) / (gamma + 1) }

// Add counts v. A NaN or infinite v is refused by the caller (the record is malformed).
func (s *Sketch) Add(v float64) {
	switch {
	case v >= minIndexable:
		s.pos = addBin(s.pos, index(v), 1)
	case v <= -minIndexable:
		s.neg = addBin(s.neg, index(-v), 1)
	default:
		s.zero++
	}
}

func addBin(bins []bin, i int32, n uint64) []bin {
	at, found := slices.BinarySearchFunc(bins, i, func(b bin, i int32) int { return int(b.index - i) })
	if found {
		bins[at].count += n
		return bins
	}
	return slices.Insert(bins, at, bin{index: i, count: n})
}

// Count is how many values were added.
func (s *Sketch) Count() uint64 {
	n := s.zero
	for _, b := range s.pos {
		n += b.count
	}
	for _, b := range s.neg {
		n += b.count
	}
	return n
}

// Merge adds o's values to s.
func (s *Sketch) Merge(o *Sketch) {
	s.zero += o.zero
	s.pos = mergeBins(s.pos, o.pos)
	s.neg = mergeBins(s.neg, o.neg)
}

func mergeBins(a, b []bin) []bin {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return slices.Clone(b)
	}
	// A window's merge adds many small sketches into one that soon has all their bins: add in
	// place when it does, rather than copying the bins for each sketch merged.
	if contains(a, b) {
		j := 0
		for i := range a {
			if j < len(b) && a[i].index == b[j].index {
				a[i].count += b[j].count
				j++
			}
		}
		return a
	}
	out := make([]bin, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i].index < b[j].index:
			out = append(out, a[i])
			i++
		case a[i].index > b[j].index:
			out = append(out, b[j])
			j++
		default:
			out = append(out, bin{index: a[i].index, count: a[i].count + b[j].count})
			i, j = i+1, j+1
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// contains reports whether every index of b is one of a's (both sorted).
func contains(a, b []bin) bool {
	i := 0
	for _, x := range b {
		for i < len(a) && a[i].index < x.index {
			i++
		}
		if i == len(a) || a[i].index != x.index {
			return false
		}
	}
	return true
}

// Quantile is the value of rank q·(n−1) (rounded down) in the sorted values, within
// RelativeAccuracy; NaN for an empty sketch or q outside [0, 1].
func (s *Sketch) Quantile(q float64) float64 {
	n := s.Count()
	if n == 0 || !(q >= 0 && q <= 1) {
		return math.NaN()
	}
	// float64 rounds a count near 2^64 up: the rank stays below n.
	rank := min(uint64(q*float64(n-1)), n-1)
	var seen uint64
	// Most negative first: the negative bins from the largest magnitude down.
	for k := len(s.neg) - 1; k >= 0; k-- {
		if seen += s.neg[k].count; seen > rank {
			return -value(s.neg[k].index)
		}
	}
	if seen += s.zero; seen > rank {
		return 0
	}
	for _, b := range s.pos {
		if seen += b.count; seen > rank {
			return value(b.index)
		}
	}
	return math.NaN() // unreachable: rank < n
}

// sketchVersion is the first byte of an encoded sketch.
const sketchVersion = 1

// AppendBinary appends s's encoding: the version, the zero count, then the negative and the
// positive bins, each as a count of bins and (index delta, count) varints.
func (s *Sketch) AppendBinary(b []byte) []byte {
	b = append(b, sketchVersion)
	b = binary.AppendUvarint(b, s.zero)
	for _, bins := range [][]bin{s.neg, s.pos} {
		b = binary.AppendUvarint(b, uint64(len(bins)))
		prev := int64(minIndex - 1)
		for _, x := range bins {
			b = binary.AppendUvarint(b, uint64(int64(x.index)-prev))
			b = binary.AppendUvarint(b, x.count)
			prev = int64(x.index)
		}
	}
	return b
}

var errSketchTruncated = errors.New("sketch: truncated")

// uvarint reads a varint as binary.Uvarint does, refusing the padded forms it accepts, so that
// a sketch has one encoding.
func uvarint(b []byte) (uint64, int) {
	v, n := binary.Uvarint(b)
	if n > 1 && b[n-1] == 0 {
		return 0, 0
	}
	return v, n
}

// decodeSketch reads a sketch AppendBinary wrote at the start of b and returns the rest. It
// refuses what AppendBinary cannot have written: an unknown version, bins out of order or out of
// range, empty bins, counts whose sum overflows.
func decodeSketch(b []byte) (Sketch, []byte, error) {
	var s Sketch
	if len(b) == 0 {
		return s, nil, errSketchTruncated
	}
	if b[0] != sketchVersion {
		return s, nil, fmt.Errorf("sketch: version %d, want %d", b[0], sketchVersion)
	}
	b = b[1:]
	zero, n := uvarint(b)
	if n <= 0 {
		return s, nil, errSketchTruncated
	}
	b = b[n:]
	s.zero = zero
	total := zero
	for side := range 2 {
		count, n := uvarint(b)
		if n <= 0 {
			return s, nil, errSketchTruncated
		}
		b = b[n:]
		// Each bin takes at least two bytes: a bin count beyond that is a lie.
		if count > uint64(len(b)/2) {
			return s, nil, fmt.Errorf("sketch: %d bins in %d bytes", count, len(b))
		}
		bins := make([]bin, 0, count)
		prev := int64(minIndex - 1)
		for range count {
			delta, n := uvarint(b)
			if n <= 0 {
				return s, nil, errSketchTruncated
			}
			b = b[n:]
			c, n := uvarint(b)
			if n <= 0 {
				return s, nil, errSketchTruncated
			}
			b = b[n:]
			if delta == 0 || delta > maxIndex-minIndex+1 || prev+int64(delta) > maxIndex {
				return s, nil, fmt.Errorf("sketch: bin index out of order or range after %d", prev)
			}
			if c == 0 {
				return s, nil, errors.New("sketch: empty bin")
			}
			if total+c < total {
				return s, nil, errors.New("sketch: counts overflow")
			}
			total += c
			prev += int64(delta)
			bins = append(bins, bin{index: int32(prev), count: c})
		}
		if side == 0 {
			s.neg = bins
		} else {
			s.pos = bins
		}
	}
	return s, b, nil
}
