package main

import (
	"math"
	"math/rand/v2"
)

// Features are the model's input columns, in order. They are written to the ONNX file's
// metadata_props under freightcast.io/features.
var Features = []string{
	"distance_km",
	"mode_ocean",
	"mode_air",
	"mode_rail",
	"mode_road",
	"carrier_on_time_rate",
	"port_congestion_index",
	"weather_severity",
	"month_sin",
	"month_cos",
	"customs_complexity",
	"dwell_time_hours",
}

// Transport modes, in the order of their one-hot columns.
const (
	modeOcean = iota
	modeAir
	modeRail
	modeRoad
)

// event is one synthetic shipment leg: its features and whether it arrived late.
type event struct {
	x       [12]float64
	delayed bool
	// risk is the true probability of delay under the generative process.
	risk float64
}

// sampleEvent draws one shipment from the generative process documented in docs/model.md.
func sampleEvent(rng *rand.Rand) event {
	var e event
	u := rng.Float64()
	mode := modeRoad
	switch {
	case u < 0.35:
		mode = modeOcean
	case u < 0.50:
		mode = modeAir
	case u < 0.70:
		mode = modeRail
	}
	// Distance: log-normal around a typical leg length of the mode.
	median := [4]float64{9000, 5500, 1100, 450}[mode]
	spread := [4]float64{0.45, 0.5, 0.5, 0.6}[mode]
	distance := median * math.Exp(spread*rng.NormFloat64())

	// Carrier punctuality: most carriers are good, a tail is not.
	onTime := 0.97 - 0.35*math.Pow(rng.Float64(), 2.5)

	// Month, and weather that is worse in the northern winter.
	month := rng.IntN(12) // 0 = January
	angle := 2 * math.Pi * float64(month) / 12
	winter := (math.Cos(angle) + 1) / 2 // 1 in January, 0 in July
	weather := clamp(0.15+0.35*winter*rng.Float64()+0.5*math.Pow(rng.Float64(), 4), 0, 1)

	// Port congestion matters for sea legs and, through hubs, a little for the others.
	congestion := clamp(math.Pow(rng.Float64(), 1.6)*[4]float64{1, 0.5, 0.6, 0.3}[mode], 0, 1)

	// Customs: international modes cross more borders.
	customs := clamp([4]float64{0.55, 0.5, 0.3, 0.15}[mode]+0.25*rng.NormFloat64(), 0, 1)

	// Dwell time grows with congestion and customs work.
	dwell := math.Exp(2.3+1.2*congestion+0.8*customs+0.35*rng.NormFloat64()) + [4]float64{24, 4, 12, 2}[mode]

	e.x[0] = distance
	e.x[1+mode] = 1
	e.x[5] = onTime
	e.x[6] = congestion
	e.x[7] = weather
	e.x[8] = math.Sin(angle)
	e.x[9] = math.Cos(angle)
	e.x[10] = customs
	e.x[11] = dwell

	logit := -3.3 +
		0.35*math.Log(distance/1000) +
		[4]float64{0.5, -0.6, 0.2, 0}[mode] +
		9*(0.9-onTime) +
		2.4*congestion*congestion +
		3.2*weather*weather*[4]float64{0.6, 1.4, 0.8, 1}[mode] +
		1.3*customs +
		0.012*dwell +
		0.4*winter
	e.risk = 1 / (1 + math.Exp(-logit))
	e.delayed = rng.Float64() < e.risk
	return e
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }
