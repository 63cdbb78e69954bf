package report

import (
	"bytes"
	"compress/gzip"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// GobEncode and GobDecode let a snapshot carry sketches in their binary encoding.
func (s Sketch) GobEncode() ([]byte, error) { return s.AppendBinary(nil), nil }

func (s *Sketch) GobDecode(b []byte) error {
	got, rest, err := decodeSketch(b)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return errors.New("sketch: trailing bytes")
	}
	*s = got
	return nil
}

// snapshot is State as written to the snapshot store: everything Apply reads, so that a
// restored state counts the next record exactly as the state it was written from.
type snapshot struct {
	// Config is the reporting configuration the state was built with; a snapshot of another is
	// not restored (its buckets and values mean something else).
	Config   []byte
	LastSeq  uint64
	Newest   int64
	Counters Counters
	Tiers    []snapTier
	Values   []snapValues
}

type snapTier struct {
	Buckets []snapBucket
}

type snapBucket struct {
	Start   int64
	Clients []snapClient
}

type snapClient struct {
	Client string
	Dims   []map[string]*Agg
	Top    []Shipment
}

type snapValues struct {
	Client string
	Kept   []map[string]int
	Folded [][]string
}

func (s *State) configKey() []byte {
	b, _ := json.Marshal(s.cfg)
	return b
}

// MarshalSnapshot encodes s (gzip over gob). The sequence is inside: the snapshot and the
// position it covers are written as one object, so neither can be found without the other.
func (s *State) MarshalSnapshot() ([]byte, error) {
	snap := snapshot{Config: s.configKey(), LastSeq: s.LastSeq, Newest: s.Newest, Counters: s.Counters}
	for _, t := range s.tiers {
		var st snapTier
		for start, clients := range t.buckets {
			sb := snapBucket{Start: start}
			for client, cb := range clients {
				sb.Clients = append(sb.Clients, snapClient{Client: client, Dims: cb.dims, Top: cb.top})
			}
			st.Buckets = append(st.Buckets, sb)
		}
		snap.Tiers = append(snap.Tiers, st)
	}
	for client, vs := range s.values {
		sv := snapValues{Client: client}
		for _, v := range vs {
			sv.Kept = append(sv.Kept, v.kept)
			folded := make([]string, 0, len(v.folded))
			for f := range v.folded {
				folded = append(folded, f)
			}
			sv.Folded = append(sv.Folded, folded)
		}
		snap.Values = append(snap.Values, sv)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := gob.NewEncoder(zw).Encode(&snap); err != nil {
		return nil, fmt.Errorf("report snapshot: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("report snapshot: %w", err)
	}
	return buf.Bytes(), nil
}

// ErrOtherConfig is a snapshot written under another reporting configuration.
var ErrOtherConfig = errors.New("report snapshot: written for another reporting configuration")

// RestoreSnapshot replaces s's content with the snapshot data. It checks what Apply relies on
// (the shapes of the dimensions and outputs), so that a damaged snapshot is refused, not
// restored into a state that panics later.
func (s *State) RestoreSnapshot(data []byte) error {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("report snapshot: %w", err)
	}
	var snap snapshot
	if err := gob.NewDecoder(zr).Decode(&snap); err != nil {
		return fmt.Errorf("report snapshot: %w", err)
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return fmt.Errorf("report snapshot: %w", err)
	}
	if !bytes.Equal(snap.Config, s.configKey()) {
		return ErrOtherConfig
	}
	fresh := NewState(s.cfg)
	dims, outputs := len(s.cfg.Dimensions), len(s.cfg.Outputs)
	if len(snap.Tiers) != len(fresh.tiers) {
		return fmt.Errorf("report snapshot: %d tiers, want %d", len(snap.Tiers), len(fresh.tiers))
	}
	for i, st := range snap.Tiers {
		t := fresh.tiers[i]
		for _, sb := range st.Buckets {
			clients := map[string]*clientBucket{}
			for _, sc := range sb.Clients {
				if len(sc.Dims) != dims {
					return fmt.Errorf("report snapshot: a bucket has %d dimensions, want %d", len(sc.Dims), dims)
				}
				for d, m := range sc.Dims {
					if m == nil { // gob writes an empty map as none
						sc.Dims[d] = map[string]*Agg{}
					}
					for v, a := range m {
						if a == nil || len(a.Sums) != outputs || len(a.Sketches) != outputs {
							return fmt.Errorf("report snapshot: value %q has the wrong number of outputs", v)
						}
					}
				}
				clients[sc.Client] = &clientBucket{dims: sc.Dims, top: sc.Top}
			}
			if len(t.buckets) == 0 || sb.Start < t.oldest {
				t.oldest = sb.Start
			}
			t.buckets[sb.Start] = clients
		}
	}
	for _, sv := range snap.Values {
		if len(sv.Kept) != dims || len(sv.Folded) != dims {
			return fmt.Errorf("report snapshot: client %q has values of %d dimensions, want %d", sv.Client, len(sv.Kept), dims)
		}
		vs := make([]*valueSet, dims)
		for d := range vs {
			vs[d] = &valueSet{kept: sv.Kept[d], folded: map[string]struct{}{}}
			if vs[d].kept == nil {
				vs[d].kept = map[string]int{}
			}
			for _, f := range sv.Folded[d] {
				vs[d].folded[f] = struct{}{}
			}
		}
		fresh.values[sv.Client] = vs
	}
	// Every bucket's client needs its value sets (evict reads them).
	for _, t := range fresh.tiers {
		for _, clients := range t.buckets {
			for client := range clients {
				if fresh.values[client] == nil {
					return fmt.Errorf("report snapshot: client %q has buckets and no values", client)
				}
			}
		}
	}
	fresh.LastSeq, fresh.Newest, fresh.Counters = snap.LastSeq, snap.Newest, snap.Counters
	for _, t := range fresh.tiers {
		t.buildCoarse(outputs)
	}
	*s = *fresh
	return nil
}
