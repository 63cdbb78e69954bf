package pipelineconfig

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/freightcast/freightcast/internal/queue"
)

func validConfig() Config {
	return Config{
		Namespace: "freight", Name: "orders", NATSURL: "nats://127.0.0.1:4222",
		Queue: queue.Spec{Topology: queue.TopologyFor("freight", "orders"), Limits: queue.Limits{
			MaxMessages: 10, MaxBytes: 1 << 20, MaxAge: time.Hour, DuplicateWindow: time.Minute,
			AckWait: 30 * time.Second, MaxDeliver: 5, MaxAckPending: 100, PredictionRetention: time.Hour}, Replicas: 3},
		NATSCredentials: queue.Credentials{CredsFile: "/etc/freightcast/nats/creds", CAFile: "/etc/freightcast/nats-ca/ca.crt"},
		Model:           Model{Name: "delay-risk", Version: "1", Features: []string{"a", "b"}},
		Ingestion:       Ingestion{MaxBodyBytes: 1 << 20, RateLimit: &RateLimit{EventsPerSecond: 10, Burst: 20}},
		Inference:       Inference{BatchSize: 64},
	}
}

func TestRoundTrip(t *testing.T) {
	t.Run("features", func(t *testing.T) { roundTrip(t, validConfig()) })
	t.Run("inputs", func(t *testing.T) {
		c := validConfig()
		c.Model.Features = nil
		c.Model.Inputs = []Input{{Name: "numeric", Features: []string{"a", "b"}}, {Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}}}
		roundTrip(t, c)
	})
	t.Run("remote over TLS", func(t *testing.T) {
		roundTrip(t, withRemote(Remote{URL: "grpcs://m-predictor.freight.svc:8081", Protocol: ProtocolGRPC, TrustFiles: []string{"/etc/ca.crt", "/etc/tls.crt"}}))
	})
}

func withRemote(r Remote) Config {
	c := validConfig()
	c.Model.Remote = &r
	return c
}

func roundTrip(t *testing.T, want Config) {
	data, err := want.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), FileName)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		data        func() string
		wantInError string
	}{
		"unknown field from a newer operator": {
			data: func() string {
				b, _ := validConfig().Marshal()
				return strings.Replace(string(b), `"name": "orders"`, `"name": "orders", "shards": 3`, 1)
			},
			wantInError: `unknown field "shards"`,
		},
		"not JSON":       {data: func() string { return "name: orders" }, wantInError: "invalid character"},
		"empty NATS URL": {data: func() string { c := validConfig(); c.NATSURL = ""; b, _ := c.Marshal(); return string(b) }, wantInError: "natsURL is empty"},
		"zero batch": {data: func() string { c := validConfig(); c.Inference.BatchSize = 0; b, _ := c.Marshal(); return string(b) },
			wantInError: "inference.batchSize must be positive"},
		"burst below rate": {data: func() string {
			c := validConfig()
			c.Ingestion.RateLimit.Burst = 1
			b, _ := c.Marshal()
			return string(b)
		}, wantInError: "ingestion.rateLimit"},
		"features and inputs": {data: withInputs(func(c *Config) { c.Model.Features = []string{"x"} }), wantInError: "model.features and model.inputs are both set"},
		"unnamed input":       {data: withInputs(func(c *Config) { c.Model.Inputs[1].Name = "" }), wantInError: "model.inputs[1].name is empty"},
		"input twice":         {data: withInputs(func(c *Config) { c.Model.Inputs[1].Name = "numeric" }), wantInError: `model.inputs[1]: input "numeric" is declared twice`},
		"datatype":            {data: withInputs(func(c *Config) { c.Model.Inputs[1].DataType = "FP16" }), wantInError: `model.inputs[1].datatype "FP16" is not one features can feed`},
		"no features":         {data: withInputs(func(c *Config) { c.Model.Inputs[1].Features = nil }), wantInError: "model.inputs[1].features is empty"},
		"feature twice":       {data: withInputs(func(c *Config) { c.Model.Inputs[1].Features = []string{"a"} }), wantInError: `model.inputs[1]: feature "a" already feeds input "numeric"`},
		"replicas": {data: func() string { c := validConfig(); c.Queue.Replicas = 2; b, _ := c.Marshal(); return string(b) },
			wantInError: "replicas must be 1, 3 or 5"},
		"two NATS identities": {data: func() string {
			c := validConfig()
			c.NATSCredentials.NKeySeedFile = "/etc/freightcast/nats/seed"
			b, _ := c.Marshal()
			return string(b)
		}, wantInError: "natsCredentials: queue: give one of"},
		"queue limits": {data: func() string { c := validConfig(); c.Queue.MaxDeliver = 0; b, _ := c.Marshal(); return string(b) },
			wantInError: "maxDeliver must be positive"},
		"trust files of a plaintext remote": {data: func() string {
			b, _ := withRemote(Remote{URL: "grpc://m:8081", Protocol: ProtocolGRPC, TrustFiles: []string{"/etc/ca.crt"}}).Marshal()
			return string(b)
		}, wantInError: `model.remote.trustFiles are for TLS, and model.remote.url "grpc://m:8081" is plaintext`},
		"a relative trust file": {data: func() string {
			b, _ := withRemote(Remote{URL: "https://m:8080", Protocol: ProtocolREST, TrustFiles: []string{"ca.crt"}}).Marshal()
			return string(b)
		}, wantInError: `model.remote.trustFiles: "ca.crt" is not an absolute path`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.data()))
			if err == nil || !strings.Contains(err.Error(), tc.wantInError) {
				t.Fatalf("Parse error = %v, want it to mention %q", err, tc.wantInError)
			}
		})
	}
}

// withInputs renders a valid config of a two-input model, changed by mutate.
func withInputs(mutate func(*Config)) func() string {
	return func() string {
		c := validConfig()
		c.Model.Features = nil
		c.Model.Inputs = []Input{{Name: "numeric", Features: []string{"a", "b"}}, {Name: "transport_mode", DataType: "INT64", Features: []string{"mode"}}}
		mutate(&c)
		b, _ := c.Marshal()
		return string(b)
	}
}

func validReporting() *Reporting {
	return &Reporting{
		Dimensions:   []ReportDimension{{Name: "lane", Expression: "event.shipment.lane"}, {Name: "carrier", Expression: "event.shipment.carrier"}},
		Outputs:      []ReportOutput{{Name: "delay_risk", Index: 0}},
		Threshold:    0.7,
		Buckets:      []ReportBucket{{Width: "5m", Retention: "48h"}, {Width: "1h", Retention: "2160h"}},
		MaxValues:    1000,
		TopShipments: 20,
	}
}

func TestReportingRoundTripsAndRejects(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		c := validConfig()
		c.Reporting, c.Queue.Reporting = validReporting(), true
		roundTrip(t, c)
	})
	cases := map[string]struct {
		mutate      func(*Config)
		wantInError string
	}{
		"queue not provisioned": {func(c *Config) { c.Queue.Reporting = false }, "queue.reporting must be true"},
		"no dimensions":         {func(c *Config) { c.Reporting.Dimensions = nil }, "reporting.dimensions: give 1 to 8, got 0"},
		"bad dimension name":    {func(c *Config) { c.Reporting.Dimensions[1].Name = "Carrier" }, `reporting.dimensions[1].name "Carrier" must match`},
		"dimension twice":       {func(c *Config) { c.Reporting.Dimensions[1].Name = "lane" }, `reporting.dimensions[1].name "lane" is declared twice`},
		"empty expression":      {func(c *Config) { c.Reporting.Dimensions[0].Expression = "" }, "reporting.dimensions[0].expression is empty"},
		"long expression": {func(c *Config) { c.Reporting.Dimensions[0].Expression = strings.Repeat("x", 5000) },
			"reporting.dimensions[0].expression is 5000 bytes"},
		"no outputs":       {func(c *Config) { c.Reporting.Outputs = nil }, "reporting.outputs: give 1 to 4"},
		"output name":      {func(c *Config) { c.Reporting.Outputs[0].Name = "" }, "reporting.outputs[0].name must be 1 to 128 bytes"},
		"negative index":   {func(c *Config) { c.Reporting.Outputs[0].Index = -1 }, "reporting.outputs[0].index must be 0"},
		"output twice":     {func(c *Config) { c.Reporting.Outputs = append(c.Reporting.Outputs, c.Reporting.Outputs[0]) }, "reporting.outputs[1]: delay_risk[0] is declared twice"},
		"width not a time": {func(c *Config) { c.Reporting.Buckets[0].Width = "five" }, `reporting.buckets[0].width "five" is not a duration`},
		"width not a divisor of a day": {func(c *Config) { c.Reporting.Buckets[0].Width = "7m" },
			"reporting.buckets[0].width 7m must be whole minutes from 1m to 24h that divide a day"},
		"coarsest first": {func(c *Config) { c.Reporting.Buckets[1].Width = "5m" }, "reporting.buckets[1].width 5m must be wider than the tier before"},
		"retention":      {func(c *Config) { c.Reporting.Buckets[1].Retention = "30m" }, "reporting.buckets[1].retention 30m is shorter than its width 1h"},
		"too many buckets": {func(c *Config) { c.Reporting.Buckets[0].Retention = "2000h" },
			"reporting.buckets[0]: retention 2000h / width 5m is 24000 buckets, more than 10000"},
		"no buckets":    {func(c *Config) { c.Reporting.Buckets = nil }, "reporting.buckets: give 1 to 4, got 0"},
		"max values":    {func(c *Config) { c.Reporting.MaxValues = 0 }, "reporting.maxValues must be 1 to 100000, got 0"},
		"top shipments": {func(c *Config) { c.Reporting.TopShipments = -1 }, "reporting.topShipments must be 0 to 1000, got -1"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := validConfig()
			c.Reporting, c.Queue.Reporting = validReporting(), true
			tc.mutate(&c)
			b, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Parse(b); err == nil || !strings.Contains(err.Error(), tc.wantInError) {
				t.Fatalf("Parse error = %v, want it to mention %q", err, tc.wantInError)
			}
		})
	}
}
