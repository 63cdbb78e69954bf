package main

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"

	"github.com/freightcast/freightcast/internal/onnxpb"
)

// Config fixes everything that determines the model bytes.
type Config struct {
	Seed      uint64
	TrainRows int
	TestRows  int
	Train     trainConfig
}

// DefaultConfig produces the committed models/freight-delay-risk.onnx.
var DefaultConfig = Config{
	Seed:      20261127,
	TrainRows: 16000,
	TestRows:  4000,
	Train:     trainConfig{Epochs: 8, BatchSize: 64, LearnRate: 0.005},
}

// Result is a trained model, exported, with its held-out evaluation.
type Result struct {
	ONNX    []byte
	Request []byte
	AUC     float64
	Brier   float64
	// OracleAUC is the AUC of the true risk of the generative process: the ceiling for any model.
	OracleAUC float64
	// BaseRate is the share of delayed shipments in the held-out set.
	BaseRate float64
	// Reliability is the calibration table over ten bins of predicted risk.
	Reliability []bin
	net         *net
	test        []event
}

type bin struct {
	Lo, Hi        float64
	Count         int
	MeanPredicted float64
	Observed      float64
}

// Generate samples the data set, trains the network and exports it.
func Generate(cfg Config) (*Result, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	data := make([]event, cfg.TrainRows+cfg.TestRows)
	for i := range data {
		data[i] = sampleEvent(rng)
	}
	trainSet, testSet := data[:cfg.TrainRows], data[cfg.TrainRows:]
	n := train(rng, trainSet, cfg.Train)
	r := &Result{net: n, test: testSet}
	r.evaluate()
	r.ONNX = exportONNX(n, cfg, r)
	req, err := sampleRequest(testSet[:2])
	if err != nil {
		return nil, err
	}
	r.Request = req
	return r, nil
}

type scored struct {
	p float64
	y bool
}

func (r *Result) evaluate() {
	s := make([]scored, len(r.test))
	oracle := make([]scored, len(r.test))
	var brier, pos float64
	for i, e := range r.test {
		p := r.net.predict(e.x)
		s[i] = scored{p, e.delayed}
		oracle[i] = scored{e.risk, e.delayed}
		y := 0.0
		if e.delayed {
			y = 1
			pos++
		}
		brier += (p - y) * (p - y)
	}
	r.Brier = brier / float64(len(s))
	r.BaseRate = pos / float64(len(s))
	r.AUC = auc(s)
	r.OracleAUC = auc(oracle)
	r.Reliability = make([]bin, 10)
	for i := range r.Reliability {
		r.Reliability[i].Lo, r.Reliability[i].Hi = float64(i)/10, float64(i+1)/10
	}
	for _, x := range s {
		b := &r.Reliability[min(int(x.p*10), 9)]
		b.Count++
		b.MeanPredicted += x.p
		if x.y {
			b.Observed++
		}
	}
	for i := range r.Reliability {
		if b := &r.Reliability[i]; b.Count > 0 {
			b.MeanPredicted /= float64(b.Count)
			b.Observed /= float64(b.Count)
		}
	}
}

// auc is the Mann-Whitney statistic: the share of (delayed, on-time) pairs ranked correctly,
// ties counting half. It sorts s.
func auc(s []scored) float64 {
	var pos float64
	for _, x := range s {
		if x.y {
			pos++
		}
	}
	sort.Slice(s, func(i, j int) bool { return s[i].p < s[j].p })
	var rankSum float64
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j].p == s[i].p {
			j++
		}
		avg := float64(i+j+1) / 2 // ranks i+1..j share their average
		for k := i; k < j; k++ {
			if s[k].y {
				rankSum += avg
			}
		}
		i = j
	}
	neg := float64(len(s)) - pos
	return (rankSum - pos*(pos+1)/2) / (pos * neg)
}

// exportONNX writes the network as Gemm, Relu, Gemm, Sigmoid with the standardisation folded
// into the first Gemm, so raw feature values go in.
func exportONNX(n *net, cfg Config, r *Result) []byte {
	w1 := make([]float32, 12*Hidden)
	b1 := make([]float32, Hidden)
	for j := range Hidden {
		b := n.b1[j]
		for i := range 12 {
			w := n.w1[i][j] / n.std[i]
			w1[i*Hidden+j] = float32(w)
			b -= w * n.mean[i]
		}
		b1[j] = float32(b)
	}
	w2 := make([]float32, Hidden)
	for j := range Hidden {
		w2[j] = float32(n.w2[j])
	}
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) }
	m := &onnxpb.Model{
		IRVersion:       7,
		OpsetImport:     []onnxpb.OperatorSet{{Version: 13}},
		ProducerName:    "freightcast-freightmodel",
		ProducerVersion: "1",
		Domain:          "io.freightcast",
		ModelVersion:    1,
		DocString: "Freight delay risk: probability that a shipment leg arrives late, from 12 raw features. " +
			"Trained on synthetic data from the generative process in docs/model.md.",
		Graph: &onnxpb.Graph{
			Name: "freight_delay_risk",
			Nodes: []onnxpb.Node{
				{Name: "dense1", OpType: "Gemm", Inputs: []string{"features", "dense1_w", "dense1_b"}, Outputs: []string{"dense1_out"}},
				{Name: "relu1", OpType: "Relu", Inputs: []string{"dense1_out"}, Outputs: []string{"relu1_out"}},
				{Name: "dense2", OpType: "Gemm", Inputs: []string{"relu1_out", "dense2_w", "dense2_b"}, Outputs: []string{"logit"}},
				{Name: "sigmoid", OpType: "Sigmoid", Inputs: []string{"logit"}, Outputs: []string{"delay_risk"}},
			},
			Initializers: []onnxpb.Tensor{
				{Name: "dense1_w", Dims: []int64{12, Hidden}, DataType: onnxpb.TypeFloat, FloatData: w1},
				{Name: "dense1_b", Dims: []int64{Hidden}, DataType: onnxpb.TypeFloat, FloatData: b1},
				{Name: "dense2_w", Dims: []int64{Hidden, 1}, DataType: onnxpb.TypeFloat, FloatData: w2},
				{Name: "dense2_b", Dims: []int64{1}, DataType: onnxpb.TypeFloat, FloatData: []float32{float32(n.b2)}},
			},
			Inputs:  []onnxpb.ValueInfo{valueInfo("features", 12)},
			Outputs: []onnxpb.ValueInfo{valueInfo("delay_risk", 1)},
		},
		MetadataProps: []onnxpb.StringString{
			{Key: "freightcast.io/features", Value: strings.Join(Features, ",")},
			{Key: "freightcast.io/model", Value: "freight-delay-risk"},
			{Key: "freightcast.io/training", Value: fmt.Sprintf("seed=%d train_rows=%d epochs=%d batch=%d adam_lr=%g",
				cfg.Seed, cfg.TrainRows, cfg.Train.Epochs, cfg.Train.BatchSize, cfg.Train.LearnRate)},
			{Key: "freightcast.io/heldout", Value: fmt.Sprintf("rows=%d auc=%s brier=%s base_rate=%s", cfg.TestRows, f(r.AUC), f(r.Brier), f(r.BaseRate))},
		},
	}
	return m.Marshal()
}

func valueInfo(name string, width int64) onnxpb.ValueInfo {
	return onnxpb.ValueInfo{
		Name: name, ElemType: onnxpb.TypeFloat, HasShape: true,
		Shape: []onnxpb.Dim{{Param: "batch"}, {Value: width, Fixed: true}},
	}
}

// sampleRequest writes an Open Inference Protocol infer body for the given events.
func sampleRequest(events []event) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"id\": \"sample-1\",\n  \"inputs\": [\n    {\n      \"name\": \"features\",\n      \"shape\": [%d, 12],\n      \"datatype\": \"FP32\",\n      \"data\": [\n", len(events))
	for i, e := range events {
		vals := make([]string, 12)
		for j, v := range e.x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("feature %s is %v", Features[j], v)
			}
			vals[j] = strconv.FormatFloat(float64(float32(v)), 'g', 6, 32)
		}
		sep := ","
		if i == len(events)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "        [%s]%s\n", strings.Join(vals, ", "), sep)
	}
	b.WriteString("      ]\n    }\n  ]\n}\n")
	return b.Bytes(), nil
}

// Report formats the held-out evaluation as Markdown for docs/model.md.
func (r *Result) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Held-out rows: %d, delayed: %.1f %%\n\n", len(r.test), 100*r.BaseRate)
	fmt.Fprintf(&b, "| metric | value |\n|---|---|\n| ROC AUC | %.4f |\n| ROC AUC of the true risk (ceiling) | %.4f |\n| Brier score | %.4f |\n| Brier score of the base rate | %.4f |\n\n",
		r.AUC, r.OracleAUC, r.Brier, r.BaseRate*(1-r.BaseRate))
	b.WriteString("| predicted risk | rows | mean predicted | observed delayed |\n|---|---|---|---|\n")
	for _, x := range r.Reliability {
		if x.Count == 0 {
			fmt.Fprintf(&b, "| %.1f–%.1f | 0 | – | – |\n", x.Lo, x.Hi)
			continue
		}
		fmt.Fprintf(&b, "| %.1f–%.1f | %d | %.3f | %.3f |\n", x.Lo, x.Hi, x.Count, x.MeanPredicted, x.Observed)
	}
	return b.String()
}
