package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/oipgrpc"
)

// freightcast infer serves gRPC on --grpc-addr beside REST: the committed sample request gets
// the same answer from both, and the gRPC server stops with the command.
func TestServeInferGRPC(t *testing.T) {
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o := defaultOptions(freightFeatures)
	o.grpcListener = gln
	base, done, cancel := startInfer(t, o)
	defer cancel()
	waitReady(t, base)

	var sample struct {
		Inputs []struct {
			Data [][]float32 `json:"data"`
		} `json:"inputs"`
	}
	raw, err := os.ReadFile("../../models/freight-delay-risk.request.json")
	if err != nil || json.Unmarshal(raw, &sample) != nil {
		t.Fatalf("sample request: %v", err)
	}
	var values []float32
	for _, row := range sample.Inputs[0].Data {
		values = append(values, row...)
	}
	c, err := oipgrpc.New(gln.Addr().String(), oipgrpc.Options{Model: "freight", Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	out, err := c.Infer(context.Background(), "sample-1", []oipgrpc.Tensor{oipgrpc.FP32("features", len(sample.Inputs[0].Data), values)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := out[0].Float32s()
	if err != nil {
		t.Fatal(err)
	}
	code, body := postSample(t, base)
	var rest struct {
		Outputs []struct {
			Data []float32 `json:"data"`
		} `json:"outputs"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &rest) != nil || len(rest.Outputs) != 1 {
		t.Fatalf("REST: %d %s", code, body)
	}
	if len(got) != 2 || got[0] != rest.Outputs[0].Data[0] || got[1] != rest.Outputs[0].Data[1] {
		t.Fatalf("gRPC %v, REST %v", got, rest.Outputs[0].Data)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("freightcast infer did not stop")
	}
	if _, err := net.DialTimeout("tcp", gln.Addr().String(), time.Second); err == nil {
		t.Fatal("the gRPC port still accepts connections after the command stopped")
	}
}
