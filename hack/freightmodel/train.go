package main

import (
	"math"
	"math/rand/v2"
)

// Hidden is the width of the hidden layer: the model is the 12→Hidden→1 MLP
// Gemm, Relu, Gemm, Sigmoid.
const Hidden = 32

// net is the trained network in float64, on standardised features. It is the Go reference the
// exported ONNX model is checked against.
type net struct {
	mean, std [12]float64
	w1        [12][Hidden]float64
	b1        [Hidden]float64
	w2        [Hidden]float64
	b2        float64
}

// predict computes the delay risk of one raw feature row.
func (n *net) predict(x [12]float64) float64 {
	var z [12]float64
	for i := range z {
		z[i] = (x[i] - n.mean[i]) / n.std[i]
	}
	var h [Hidden]float64
	n.hidden(&z, &h)
	return sigmoid(n.logit(&h))
}

func (n *net) hidden(z *[12]float64, h *[Hidden]float64) {
	for j := range h {
		s := n.b1[j]
		for i := range z {
			s += z[i] * n.w1[i][j]
		}
		h[j] = math.Max(s, 0)
	}
}

func (n *net) logit(h *[Hidden]float64) float64 {
	s := n.b2
	for j := range h {
		s += h[j] * n.w2[j]
	}
	return s
}

func sigmoid(v float64) float64 { return 1 / (1 + math.Exp(-v)) }

// trainConfig holds the knobs of training.
type trainConfig struct {
	Epochs    int
	BatchSize int
	LearnRate float64
}

// train fits the network with Adam on binary cross-entropy. Everything, initialisation and
// shuffling included, draws from rng, so a seed fixes the result.
func train(rng *rand.Rand, data []event, cfg trainConfig) *net {
	n := &net{}
	for i := range 12 {
		var s, ss float64
		for _, e := range data {
			s += e.x[i]
		}
		n.mean[i] = s / float64(len(data))
		for _, e := range data {
			d := e.x[i] - n.mean[i]
			ss += d * d
		}
		n.std[i] = math.Max(math.Sqrt(ss/float64(len(data))), 1e-6)
	}
	// He initialisation for the ReLU layer, Xavier for the output.
	for i := range 12 {
		for j := range Hidden {
			n.w1[i][j] = rng.NormFloat64() * math.Sqrt(2.0/12)
		}
	}
	for j := range Hidden {
		n.w2[j] = rng.NormFloat64() * math.Sqrt(1.0/Hidden)
	}

	const params = 12*Hidden + Hidden + Hidden + 1
	var m, v, g [params]float64
	const beta1, beta2, eps = 0.9, 0.999, 1e-8
	order := make([]int, len(data))
	for i := range order {
		order[i] = i
	}
	t := 0
	for range cfg.Epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < len(order); start += cfg.BatchSize {
			batch := order[start:min(start+cfg.BatchSize, len(order))]
			g = [params]float64{}
			for _, idx := range batch {
				n.accumulate(&data[idx], &g)
			}
			t++
			c1 := 1 - math.Pow(beta1, float64(t))
			c2 := 1 - math.Pow(beta2, float64(t))
			p := n.params()
			for i := range g {
				gi := g[i] / float64(len(batch))
				m[i] = beta1*m[i] + (1-beta1)*gi
				v[i] = beta2*v[i] + (1-beta2)*gi*gi
				*p[i] -= cfg.LearnRate * (m[i] / c1) / (math.Sqrt(v[i]/c2) + eps)
			}
		}
	}
	return n
}

// params lists pointers to every parameter, in the order of the gradient vector.
func (n *net) params() []*float64 {
	p := make([]*float64, 0, 12*Hidden+2*Hidden+1)
	for i := range 12 {
		for j := range Hidden {
			p = append(p, &n.w1[i][j])
		}
	}
	for j := range Hidden {
		p = append(p, &n.b1[j])
	}
	for j := range Hidden {
		p = append(p, &n.w2[j])
	}
	return append(p, &n.b2)
}

// accumulate adds the cross-entropy gradient of one example to g (same order as params).
func (n *net) accumulate(e *event, g *[12*Hidden + 2*Hidden + 1]float64) {
	var z [12]float64
	for i := range z {
		z[i] = (e.x[i] - n.mean[i]) / n.std[i]
	}
	var h [Hidden]float64
	n.hidden(&z, &h)
	y := 0.0
	if e.delayed {
		y = 1
	}
	dl := sigmoid(n.logit(&h)) - y // d loss / d logit
	const b1At, w2At, b2At = 12 * Hidden, 12*Hidden + Hidden, 12*Hidden + 2*Hidden
	for j := range Hidden {
		g[w2At+j] += dl * h[j]
		if h[j] <= 0 {
			continue
		}
		dh := dl * n.w2[j]
		g[b1At+j] += dh
		for i := range z {
			g[i*Hidden+j] += dh * z[i]
		}
	}
	g[b2At] += dl
}
