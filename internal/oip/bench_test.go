package oip

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkHTTPInfer is the load generator of docs/benchmarks.md: c keep-alive connections on
// loopback send b.N single-row infer requests between them to a real server, and the benchmark
// reports throughput and latency percentiles. Client and server share the machine, so the
// client is a lean HTTP/1.1 writer and reader (as wrk is) rather than net/http's client, which
// costs more CPU per request than the server does.
func BenchmarkHTTPInfer(b *testing.B) {
	delay := time.Millisecond
	if v := os.Getenv("BENCH_BATCH_DELAY"); v != "" {
		delay, _ = time.ParseDuration(v)
	}
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			ts := newTestServer(b, true, func(cfg *Config) { cfg.MaxBatchDelay = delay })
			body := `{"id":"bench","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(1)) + `]}]}`
			addr := strings.TrimPrefix(ts.URL, "http://")
			req := []byte("POST /v2/models/freight/infer HTTP/1.1\r\nHost: " + addr +
				"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			errs := make(chan error, c)
			b.ResetTimer()
			var wg sync.WaitGroup
			for range c {
				wg.Go(func() {
					conn, err := net.Dial("tcp", addr)
					if err != nil {
						errs <- err
						return
					}
					defer conn.Close()
					r := bufio.NewReader(conn)
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						start := time.Now()
						if _, err := conn.Write(req); err != nil {
							errs <- err
							return
						}
						if err := readResponse(r); err != nil {
							errs <- err
							return
						}
						lat[i] = time.Since(start)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			reportLatency(b, lat)
			reportBatching(b, ts)
		})
	}
}

// readResponse reads one HTTP/1.1 response with a Content-Length body and checks it is a 200.
func readResponse(r *bufio.Reader) error {
	status, err := r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", status)
	}
	length := -1
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if v, ok := bytes.CutPrefix(line, []byte("Content-Length: ")); ok {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return err
			}
		}
	}
	if length < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err = r.Discard(length)
	return err
}

// BenchmarkHTTPInferStdClient is the same load sent with net/http's client, for comparison.
func BenchmarkHTTPInferStdClient(b *testing.B) {
	for _, c := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			ts := newTestServer(b, true, nil)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c, DisableCompression: true}}
			defer client.CloseIdleConnections()
			body := []byte(`{"id":"bench","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(1)) + `]}]}`)
			url := ts.URL + "/v2/models/freight/infer"
			lat := make([]time.Duration, b.N)
			var next atomic.Int64
			var failed atomic.Int64
			b.ResetTimer()
			var wg sync.WaitGroup
			for range c {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						start := time.Now()
						resp, err := client.Post(url, "application/json", bytes.NewReader(body))
						if err != nil {
							failed.Add(1)
							continue
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							failed.Add(1)
						}
						lat[i] = time.Since(start)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > 0 {
				b.Fatalf("%d of %d requests failed", n, b.N)
			}
			reportLatency(b, lat)
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) }
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
	b.ReportMetric(0, "ns/op") // per-request time is what req/s and the percentiles say
}

// reportBatching reports the mean rows per model run, from the server's own histogram.
func reportBatching(b *testing.B, ts *testServer) {
	mfs, err := ts.reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range mfs {
		if f.GetName() == "freightcast_inference_batch_size" {
			h := f.GetMetric()[0].GetHistogram()
			b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "rows/run")
		}
	}
}

// BenchmarkDecodeInferRequest is the infer body decoder alone, on the benchmark's single-row
// body and on a 64-row body of nested rows, to tell its share of a request.
func BenchmarkDecodeInferRequest(b *testing.B) {
	rows := make([]string, 64)
	for i := range rows {
		rows[i] = "[" + jsonNumbers(featureRow(i)) + "]"
	}
	bodies := map[string]string{
		"rows=1":  `{"id":"bench","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(1)) + `]}]}`,
		"rows=64": `{"id":"bench","inputs":[{"name":"features","shape":[64,12],"datatype":"FP32","data":[` + strings.Join(rows, ",") + `]}],"outputs":[{"name":"delay_risk"}]}`,
	}
	for _, name := range []string{"rows=1", "rows=64"} {
		body := []byte(bodies[name])
		b.Run(name, func(b *testing.B) {
			var r inferRequest
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := decodeInferRequest(body, &r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServeHTTPInfer is one single-row infer request through the server's handler alone —
// routing, auth, decoding, the model run, encoding and metrics — without the network, so that
// the cost of each is visible in ns and allocations.
func BenchmarkServeHTTPInfer(b *testing.B) {
	ts := newTestServer(b, true, nil)
	body := `{"id":"bench","inputs":[{"name":"features","shape":[1,12],"datatype":"FP32","data":[` + jsonNumbers(featureRow(1)) + `]}]}`
	req := httptest.NewRequest(http.MethodPost, "/v2/models/freight/infer", nil)
	req.Header.Set("Content-Type", "application/json")
	w := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		req.Body = io.NopCloser(strings.NewReader(body))
		w.code = 0
		ts.oip.ServeHTTP(w, req)
		if w.code != http.StatusOK {
			b.Fatalf("status %d", w.code)
		}
	}
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	header http.Header
	code   int
}

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }
