package oip

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/freightcast/freightcast/internal/oippb"
	"github.com/freightcast/freightcast/internal/testing/cputime"
)

// BenchmarkGRPCvsREST is docs/benchmarks.md's comparison of the two protocols on one server
// (freight model, max batch 64, max delay 1 ms), over loopback from the same process: c
// concurrent callers send b.N infer requests of 1 or 64 rows between them, each the next as
// soon as its previous answer is in. REST is driven as BenchmarkHTTPInfer drives it (c
// keep-alive HTTP/1.1 connections, pre-built requests, a lean response reader, as wrk does);
// gRPC by the client generated from the protocol's proto over one connection (HTTP/2 streams),
// with the rows in raw_input_contents, as tritonclient sends them; grpc-pool the same over
// benchGRPCConns connections, the callers spread over them. rest-nethttp is REST from
// net/http's client, the client a Go program would use, for the comparison of full clients. The load generators share
// the two cores with the server, so each protocol's client cost is in its figures; cpu-µs/req
// is the CPU time of the whole process (server and client) per request, which moves far less
// with the machine's other load than req/s does.
func BenchmarkGRPCvsREST(b *testing.B) {
	for _, rows := range []int{1, 64} {
		for _, proto := range []string{"rest", "rest-nethttp", "grpc", "grpc-pool"} {
			for _, c := range []int{1, 8, 64} {
				b.Run(fmt.Sprintf("batch=%d/proto=%s/concurrency=%d", rows, proto, c), func(b *testing.B) {
					ts := newTestServer(b, true, nil)
					var lat []time.Duration
					var cpu time.Duration
					switch proto {
					case "rest":
						lat, cpu = benchREST(b, ts, rows, c)
					case "rest-nethttp":
						lat, cpu = benchRESTNetHTTP(b, ts, rows, c)
					case "grpc":
						lat, cpu = benchGRPC(b, ts, rows, c, 1)
					default:
						lat, cpu = benchGRPC(b, ts, rows, c, benchGRPCConns)
					}
					reportLatency(b, lat)
					b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
					reportBatching(b, ts)
				})
			}
		}
	}
}

// drive runs b.N calls of call across c goroutines and returns each call's latency and the
// process's CPU time meanwhile; setup gives each goroutine its call.
func drive(b *testing.B, c int, setup func() (call func() error, done func(), err error)) ([]time.Duration, time.Duration) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	errs := make(chan error, c)
	b.ResetTimer()
	startCPU := cputime.Process()
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			call, done, err := setup()
			if err != nil {
				errs <- err
				return
			}
			defer done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				start := time.Now()
				if err := call(); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(start)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	cpu := cputime.Process() - startCPU
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return lat, cpu
}

func restBody(rows int) string {
	data := make([]string, rows)
	for i := range data {
		data[i] = jsonNumbers(featureRow(i))
	}
	return `{"id":"bench","inputs":[{"name":"features","shape":[` + strconv.Itoa(rows) + `,12],"datatype":"FP32","data":[` + strings.Join(data, ",") + `]}]}`
}

func benchRESTNetHTTP(b *testing.B, ts *testServer, rows, c int) ([]time.Duration, time.Duration) {
	body := []byte(restBody(rows))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}}
	defer client.CloseIdleConnections()
	url := ts.URL + "/v2/models/freight/infer"
	return drive(b, c, func() (func() error, func(), error) {
		return func() error {
			resp, err := client.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}, func() {}, nil
	})
}

func benchREST(b *testing.B, ts *testServer, rows, c int) ([]time.Duration, time.Duration) {
	body := restBody(rows)
	addr := strings.TrimPrefix(ts.URL, "http://")
	req := []byte("POST /v2/models/freight/infer HTTP/1.1\r\nHost: " + addr +
		"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return drive(b, c, func() (func() error, func(), error) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		r := bufio.NewReader(conn)
		return func() error {
			if _, err := conn.Write(req); err != nil {
				return err
			}
			return readResponse(r)
		}, func() { conn.Close() }, nil
	})
}

// benchGRPCConns is grpc-pool's connections: the pool of docs/inference.md's recommended client.
const benchGRPCConns = 4

func benchGRPC(b *testing.B, ts *testServer, rows, c, conns int) ([]time.Duration, time.Duration) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	gs := ts.oip.NewGRPCServer(nil)
	go func() { _ = gs.Serve(ln) }()
	defer gs.Stop()
	// One connection is what one tritonclient or KServe client holds; grpc-pool spreads the
	// callers over a few, as oipgrpc.Options.Conns does.
	clients := make([]oippb.GRPCInferenceServiceClient, conns)
	for i := range clients {
		conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithSharedWriteBuffer(true))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		clients[i] = oippb.NewGRPCInferenceServiceClient(conn)
	}
	var caller atomic.Int64
	var raw []byte
	for i := range rows {
		for _, v := range featureRow(i) {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	}
	req := &oippb.ModelInferRequest{ModelName: "freight", Id: "bench",
		Inputs:           []*oippb.ModelInferRequest_InferInputTensor{{Name: "features", Datatype: "FP32", Shape: []int64{int64(rows), 12}}},
		RawInputContents: [][]byte{raw}}
	ctx := context.Background()
	return drive(b, c, func() (func() error, func(), error) {
		client := clients[int(caller.Add(1))%len(clients)]
		return func() error {
			resp, err := client.ModelInfer(ctx, req)
			if err == nil && len(resp.RawOutputContents) != 1 {
				err = fmt.Errorf("%d raw outputs", len(resp.RawOutputContents))
			}
			return err
		}, func() {}, nil
	})
}
