package ingest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/testing/cputime"
)

// The cost of feature transforms: NDJSON bodies of the sample's raw shipments, whose 12 features
// the sample pipeline's transforms compute (testdata/sample-transforms.json, kept equal to
// config/samples by cmd/freightcast's tests), against the same shipments sent with the features
// precomputed, to the same handler in alternating rounds:
//
//	go test -run '^$' -bench 'Transforms' -benchtime 20x ./internal/ingest

// sampleFeatures are the sample model's features, in its order.
var sampleFeatures = []string{"distance_km", "mode_ocean", "mode_air", "mode_rail", "mode_road", "carrier_on_time_rate",
	"port_congestion_index", "weather_severity", "month_sin", "month_cos", "customs_complexity", "dwell_time_hours"}

// sampleShipment is the first sample shipment (models/freight-delay-risk.events.json).
const sampleShipment = `{"ref":"MSKU7781203","lane":"CNSHA-NLRTM","carrier":"Maersk","mode":"ocean",` +
	`"origin":{"port":"CNSHA","lat":31.2304,"lon":121.4737,"tz":"Asia/Shanghai"},"destination":{"port":"NLRTM","lat":51.9244,"lon":4.4777},` +
	`"gate_in":"2026-11-25T06:00:00+08:00","departure":"2026-11-27T10:00:00+08:00","promised_arrival":"2026-12-29T12:00:00+01:00",` +
	`"weight_kg":18200,"customs_codes":["8471.30","8517.62","8542.31"],"weather":{"severity":0.4}}`

// sampleComputed are the features the transforms compute for sampleShipment.
const sampleComputed = `{"distance_km":8927.118871242441,"mode_ocean":1,"mode_air":0,"mode_rail":0,"mode_road":0,"carrier_on_time_rate":0.71,` +
	`"port_congestion_index":0.82,"weather_severity":0.4,"month_sin":-0.5,"month_cos":0.8660254037844387,"customs_complexity":0.6,"dwell_time_hours":52}`

func rawSampleEvent(buf []byte, id int64) []byte {
	buf = append(buf, `{"id":"bench-`...)
	buf = strconv.AppendInt(buf, id, 10)
	return append(buf, `","shipment":`+sampleShipment+`}`...)
}

func precomputedSampleEvent(buf []byte, id int64) []byte {
	buf = append(buf, `{"id":"bench-`...)
	buf = strconv.AppendInt(buf, id, 10)
	return append(buf, `","features":`+sampleComputed+`,"shipment":`+sampleShipment+`}`...)
}

func sampleTransforms(tb testing.TB) pipelineconfig.Transforms {
	data, err := os.ReadFile(filepath.Join("testdata", "sample-transforms.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var t pipelineconfig.Transforms
	if err := json.Unmarshal(data, &t); err != nil {
		tb.Fatal(err)
	}
	return t
}

// BenchmarkTransformsNDJSON100: bodies of 100 raw shipments from 8 clients, the features
// computed by the 12 transforms, against the same shipments with precomputed features. ratio is
// precomputed time / transformed time (1 = free).
func BenchmarkTransformsNDJSON100(b *testing.B) {
	const roundEvents, perBody, clients = 2000, 100, 8
	spec := testSpec(1 << 40)
	spec.MaxBytes = 2 << 30 // 2000 events of 800 B a round
	spec.DuplicateWindow = 2 * time.Minute
	e := newEnv(b, spec, Config{Features: sampleFeatures, MaxBodyBytes: 1 << 20, Transforms: sampleTransforms(b)})
	pre := newPoster(e, "application/x-ndjson", perBody)
	pre.event = precomputedSampleEvent
	raw := newPoster(e, "application/x-ndjson", perBody)
	raw.event = rawSampleEvent
	var preTime, rawTime, preCPU, rawCPU time.Duration
	b.ResetTimer()
	for range b.N {
		start, startCPU := time.Now(), cputime.Process()
		pre.postConcurrently(b, roundEvents/perBody, clients)
		mid, midCPU := time.Now(), cputime.Process()
		raw.postConcurrently(b, roundEvents/perBody, clients)
		preTime += mid.Sub(start)
		rawTime += time.Since(mid)
		preCPU += midCPU - startCPU
		rawCPU += cputime.Process() - midCPU
	}
	events := float64(b.N * roundEvents)
	b.ReportMetric(events/preTime.Seconds(), "precomputed-events/s")
	b.ReportMetric(events/rawTime.Seconds(), "transformed-events/s")
	b.ReportMetric(preTime.Seconds()/rawTime.Seconds(), "ratio")
	// CPU of the whole process (clients, handler, nats-server) per event: steadier than the
	// rates on a shared machine.
	if preCPU > 0 {
		b.ReportMetric(float64(preCPU.Microseconds())/events, "precomputed-cpu-µs/event")
		b.ReportMetric(float64(rawCPU.Microseconds())/events, "transformed-cpu-µs/event")
		b.ReportMetric(float64(preCPU)/float64(rawCPU), "cpu-ratio")
	}
}

// BenchmarkDecodeNDJSON100Transforms and BenchmarkDecodeNDJSON100Precomputed are the parser
// alone on the same bodies, to tell the transforms' share of a request's CPU.
func BenchmarkDecodeNDJSON100Transforms(b *testing.B) {
	benchDecodeSample(b, rawSampleEvent)
}

func BenchmarkDecodeNDJSON100Precomputed(b *testing.B) {
	benchDecodeSample(b, precomputedSampleEvent)
}

func benchDecodeSample(b *testing.B, event func([]byte, int64) []byte) {
	d, err := newDecoder(sampleFeatures, "FP32")
	if err != nil {
		b.Fatal(err)
	}
	if err := d.withTransforms(sampleTransforms(b)); err != nil {
		b.Fatal(err)
	}
	benchDecode(b, d, event)
}
