package oipgrpc_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/freightcast/freightcast/internal/metrics"
	"github.com/freightcast/freightcast/internal/model"
	"github.com/freightcast/freightcast/internal/oip"
	"github.com/freightcast/freightcast/internal/oipgrpc"
	"github.com/freightcast/freightcast/internal/testing/modelfixtures"
)

// serve serves the fixture's model as "m" over gRPC on loopback and returns its address.
func serve(t *testing.T, fx *modelfixtures.Fixture) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	serveOn(t, fx, ln)
	return ln.Addr().String()
}

// serveOn serves the fixture's model as "m" over gRPC on ln.
func serveOn(t *testing.T, fx *modelfixtures.Fixture, ln net.Listener) {
	t.Helper()
	m, err := metrics.NewInference(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := oip.NewServer(oip.Config{ModelName: "m", ModelVersion: "1", MaxBatchSize: 64, MaxBatchDelay: time.Millisecond, MaxBodyBytes: 4 << 20, Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := model.LoadFile(fx.Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.SetModel(rt); err != nil {
		t.Fatal(err)
	}
	gs := srv.NewGRPCServer(nil)
	go func() { _ = gs.Serve(ln) }()
	t.Cleanup(gs.Stop)
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// A client of several connections spreads its calls over all of them, each answered right.
func TestCallsSpreadOverTheConnections(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	serveOn(t, fx, ln)
	c, err := oipgrpc.New(ln.Addr().String(), oipgrpc.Options{Model: "m", Conns: 3, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	row := fx.CompleteRows()[0]
	var values []float32
	for _, v := range fx.Inputs[0].Row(row) {
		f, _ := v.Float64()
		values = append(values, float32(f))
	}
	for i := range 6 {
		out, err := c.Infer(context.Background(), strconv.Itoa(i), []oipgrpc.Tensor{oipgrpc.FP32("input", 1, values)})
		if err != nil {
			t.Fatal(err)
		}
		got, err := out[0].Float32s()
		if err != nil || len(got) != 1 || !modelfixtures.Close(float64(got[0]), fx.Outputs[0].Float(row), 1e-5) {
			t.Fatalf("call %d: %v %v, the framework says %v", i, got, err, fx.Outputs[0].Float(row))
		}
	}
	if n := ln.accepted.Load(); n != 3 {
		t.Errorf("the server accepted %d connections, want 3", n)
	}
	for _, n := range []int{-1, oipgrpc.MaxConns + 1} {
		if _, err := oipgrpc.New(ln.Addr().String(), oipgrpc.Options{Model: "m", Conns: n}); err == nil {
			t.Errorf("%d connections: no error", n)
		}
	}
}

// A batch of rows scored remotely comes back with the framework's answers.
func TestInferRowsMatchesTheFramework(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	c, err := oipgrpc.New(serve(t, fx), oipgrpc.Options{Model: "m", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ready, err := c.Ready(context.Background()); err != nil || !ready {
		t.Fatalf("ready %v %v", ready, err)
	}
	md, err := c.Metadata(context.Background())
	if err != nil || len(md.Inputs) != 1 || md.Inputs[0].Name != "input" {
		t.Fatalf("metadata %v %v", md, err)
	}
	rows := fx.CompleteRows()
	var values []float32
	for _, r := range rows {
		for _, v := range fx.Inputs[0].Row(r) {
			f, _ := v.Float64()
			values = append(values, float32(f))
		}
	}
	out, err := c.Infer(context.Background(), "batch-1", []oipgrpc.Tensor{oipgrpc.FP32("input", len(rows), values)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 1 || out[0].Name != "variable" {
		t.Fatalf("outputs %v", out)
	}
	got, err := out[0].Float32s()
	if err != nil || len(got) != len(rows) {
		t.Fatalf("%d values, %v; want %d", len(got), err, len(rows))
	}
	for i, r := range rows {
		if w := fx.Outputs[0].Float(r); !modelfixtures.Close(float64(got[i]), w, 1e-5) {
			t.Errorf("row %d = %v, the framework says %v", r, got[i], w)
		}
	}
}

// Errors keep their gRPC status; a deadline that has passed is DeadlineExceeded.
func TestInferErrorsAndDeadlines(t *testing.T) {
	t.Parallel()
	fx := modelfixtures.Load(t, "skl_rf_delay_hours")
	addr := serve(t, fx)
	other, err := oipgrpc.New(addr, oipgrpc.Options{Model: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	in := []oipgrpc.Tensor{oipgrpc.FP32("input", 1, make([]float32, 12))}
	if _, err := other.Infer(context.Background(), "1", in); status.Code(err) != codes.NotFound {
		t.Fatalf("another model: %v, want NotFound", err)
	}
	c, err := oipgrpc.New(addr, oipgrpc.Options{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Infer(context.Background(), "2", []oipgrpc.Tensor{oipgrpc.FP32("input", 1, make([]float32, 11))}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a short row: %v, want InvalidArgument", err)
	}
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := c.Infer(ctx, "3", in); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("past deadline: %v, want DeadlineExceeded", err)
	}
	if _, err := oipgrpc.New(addr, oipgrpc.Options{}); err == nil || errors.Is(err, context.Canceled) {
		t.Fatalf("no model name: %v, want an error", err)
	}
}
