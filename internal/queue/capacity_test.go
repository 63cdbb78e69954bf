package queue

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/freightcast/freightcast/internal/testing/natstest"
)

const mib = 1 << 20

func smallSpec(name string) Spec {
	s := testSpec(name)
	s.MaxBytes = 2 * mib
	return s
}

// TestProvisionUntilTheStoreIsFull: a 14 MiB store holds two pipelines of 3 × 2 MiB; the third
// is refused with the numbers and leaves nothing behind; deleting one makes room for it.
func TestProvisionUntilTheStoreIsFull(t *testing.T) {
	cases := map[string]struct {
		opts []Option
		// numbers: whether the error can say what is free (the store's size is known).
		numbers bool
	}{
		"the caller knows the store's size": {opts: []Option{WithStoreLimit(StoreLimit{PerServer: 14 * mib, Servers: 1})}, numbers: true},
		"only the server knows":             {numbers: false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			srv := natstest.Start(t, natstest.WithMaxStore(14*mib))
			js := connect(t, srv.URL())
			ctx := context.Background()
			for _, p := range []string{"a", "b"} {
				if _, err := Provision(ctx, js, smallSpec(p), tc.opts...); err != nil {
					t.Fatalf("pipeline %s: %v", p, err)
				}
			}
			before := streamNames(t, js)

			_, err := Provision(ctx, js, smallSpec("c"), tc.opts...)
			var ise *InsufficientStorageError
			if !errors.As(err, &ise) || !errors.Is(err, ErrInsufficientStorage) {
				t.Fatalf("the third pipeline: err = %v, want an InsufficientStorageError", err)
			}
			if ise.Needed != 6*mib || ise.Pipeline != "ns1/c" || ise.Capacity.Reserved != 12*mib {
				t.Errorf("error numbers: needed %d, pipeline %s, reserved %d; want 6 MiB, ns1/c, 12 MiB", ise.Needed, ise.Pipeline, ise.Capacity.Reserved)
			}
			msg := err.Error()
			for _, want := range []string{"ns1/c needs 6 MiB", "3 streams × maxBytes 2 MiB × 1 replica", "reserve 12 MiB", "lower spec.queue.maxBytes"} {
				if !strings.Contains(msg, want) {
					t.Errorf("the error does not say %q: %s", want, msg)
				}
			}
			if tc.numbers {
				if got := ise.Capacity.Available(); got != 2*mib {
					t.Errorf("available = %d, want 2 MiB", got)
				}
				if !strings.Contains(msg, "has 2 MiB free") || !strings.Contains(msg, "max_file_store of 14 MiB") {
					t.Errorf("the error does not give the free room and the store: %s", msg)
				}
				if ise.Cause != nil {
					t.Errorf("with the store's size known the pipeline is refused before asking the server, got cause %v", ise.Cause)
				}
			} else if ise.Cause == nil || !strings.Contains(ise.Cause.Error(), "10047") {
				t.Errorf("the server's refusal is not kept: %v", ise.Cause)
			}
			if after := streamNames(t, js); !slices.Equal(before, after) {
				t.Fatalf("the refused pipeline left a part behind: streams %v, before %v", after, before)
			}

			if _, err := Delete(ctx, js, smallSpec("a").Topology, false); err != nil {
				t.Fatal(err)
			}
			if _, err := Provision(ctx, js, smallSpec("c"), tc.opts...); err != nil {
				t.Fatalf("after deleting a pipeline the third still does not fit: %v", err)
			}
		})
	}
}

func TestReadCapacityCountsReplicasAndNamesPipelines(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	js := connect(t, c.URL())
	ctx := clusterCtx(t)
	r3 := smallSpec("three")
	r3.Replicas = 3
	for _, s := range []Spec{smallSpec("one"), r3} {
		if _, err := Provision(ctx, js, s); err != nil {
			t.Fatal(err)
		}
	}
	// A stream of someone else's, in the same account.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "other", Subjects: []string{"other"}, MaxBytes: mib}); err != nil {
		t.Fatal(err)
	}
	capa, err := ReadCapacity(ctx, js, StoreLimit{PerServer: 20 * mib, Servers: 3})
	if err != nil {
		t.Fatal(err)
	}
	// one: 3 × 2 MiB; three: 3 × 2 MiB × 3; other: 1 MiB.
	if want := int64(6*mib + 18*mib + mib); capa.Reserved != want {
		t.Errorf("reserved = %s, want %s", FormatBytes(capa.Reserved), FormatBytes(want))
	}
	if capa.Limit != 60*mib || capa.Available() != 60*mib-capa.Reserved {
		t.Errorf("limit %s, available %s; want 60 MiB and the rest", FormatBytes(capa.Limit), FormatBytes(capa.Available()))
	}
	free := capa.ServerFree()
	var total int64
	for _, f := range free {
		total += 20*mib - f
	}
	if len(free) != 3 || total != capa.Reserved {
		t.Errorf("per-server reservations %v do not add up to %s", free, FormatBytes(capa.Reserved))
	}
	var pipelines []string
	for _, s := range capa.Streams {
		if s.Freightcast() {
			pipelines = append(pipelines, fmt.Sprintf("%s/%s %s", s.Namespace, s.Pipeline, s.Role))
		}
	}
	slices.Sort(pipelines)
	want := []string{"ns1/one events", "ns1/one output", "ns1/one predictions", "ns1/three events", "ns1/three output", "ns1/three predictions"}
	if !slices.Equal(pipelines, want) {
		t.Errorf("streams by pipeline %v, want %v", pipelines, want)
	}
	orphans := capa.Orphans(func(_, name string) bool { return name == "one" })
	var names []string
	for _, o := range orphans {
		names = append(names, o.Name)
	}
	if want := []string{r3.Stream, r3.BucketStream(), r3.OutputStream}; !sameSet(names, want) {
		t.Errorf("orphans %v, want %v (never the foreign stream)", names, want)
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func TestFits(t *testing.T) {
	streams := func(servers ...string) []Stream {
		var out []Stream
		for _, s := range servers {
			out = append(out, Stream{Name: "s-" + s, MaxBytes: 6 * mib, Replicas: 1, Servers: []string{s}})
		}
		return out
	}
	cases := map[string]struct {
		c                   Capacity
		replicas            int
		asks                []int64
		wantOK, wantCertain bool
	}{
		"nothing known": {c: Capacity{Limit: -1}, replicas: 1, asks: []int64{mib}, wantOK: true},
		"account full":  {c: Capacity{Limit: 10 * mib, Reserved: 9 * mib}, replicas: 1, asks: []int64{mib, mib}, wantCertain: true},
		"account room":  {c: Capacity{Limit: 10 * mib, Reserved: 8 * mib}, replicas: 1, asks: []int64{mib, mib}, wantOK: true},
		"account counts replicas": {c: Capacity{Limit: 10 * mib, Reserved: 5 * mib}, replicas: 3,
			asks: []int64{mib, mib}, wantCertain: true},
		"one server full, another empty": {c: Capacity{Limit: -1, Server: StoreLimit{PerServer: 10 * mib, Servers: 2}, Streams: streams("n0")},
			replicas: 1, asks: []int64{5 * mib, 5 * mib}, wantOK: true, wantCertain: true},
		"R3 needs the fullest server too": {c: Capacity{Limit: -1, Server: StoreLimit{PerServer: 10 * mib, Servers: 3}, Streams: streams("n0")},
			replicas: 3, asks: []int64{5 * mib}, wantCertain: true},
		"more replicas than servers is the server's to say": {c: Capacity{Limit: -1, Server: StoreLimit{PerServer: 10 * mib, Servers: 1}},
			replicas: 3, asks: []int64{mib}, wantOK: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ok, certain := tc.c.fits(tc.replicas, tc.asks...)
			if ok != tc.wantOK || certain != tc.wantCertain {
				t.Fatalf("fits = %v, certain = %v; want %v, %v", ok, certain, tc.wantOK, tc.wantCertain)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	cases := map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1 KiB", 1536 * 1024: "1.5 MiB", 1 << 30: "1 GiB", 7 << 30 / 2: "3.5 GiB", -2 * mib: "-2 MiB"}
	for n, want := range cases {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}
