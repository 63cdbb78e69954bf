package pipelineconfig

// Placeholder of the contract (REPORTING-CONTRACT.md) until i19-core lands its reporting.go.

// Reporting configures the reporting role (`freightcast report`): the aggregates it keeps of the
// pipeline's predictions for its clients. Nil in Config means no reporting.
type Reporting struct {
	// Dimensions are what the aggregates are broken down by: each a CEL expression over the
	// `event` the feature transforms see ({id, shipment}), its result formatted as a string.
	Dimensions []ReportDimension `json:"dimensions"`
	// Outputs are the model outputs summarized; the first is "the risk" (threshold, riskiest).
	Outputs []ReportOutput `json:"outputs"`
	// Threshold is what "above threshold" counts, on the first output.
	Threshold float64 `json:"threshold"`
	// Buckets are the time tiers kept, finest first (e.g. 5m kept 48h, 1h kept 2160h).
	Buckets []ReportBucket `json:"buckets"`
	// MaxValues bounds the distinct values kept per client and dimension; the values beyond are
	// folded into the value "other", and answers say how many were.
	MaxValues int `json:"maxValues"`
	// TopShipments is how many riskiest shipments are kept per client and finest bucket.
	TopShipments int `json:"topShipments"`
}

// ReportDimension is one breakdown of the aggregates.
type ReportDimension struct {
	// Name is the dimension's name in the API: [a-z][a-z0-9_]{0,62}.
	Name string `json:"name"`
	// Expression is CEL over `event`; a missing field gives the value "unknown".
	Expression string `json:"expression"`
}

// ReportOutput is one element of one model output.
type ReportOutput struct {
	// Name is the model output's name.
	Name string `json:"name"`
	// Index is the element of it (0 for a model with one value per output).
	Index int `json:"index"`
}

// ReportBucket is one time tier: buckets of Width, kept for Retention. Durations are Go
// durations as strings ("5m", "48h"), as the API writes them.
type ReportBucket struct {
	Width     string `json:"width"`
	Retention string `json:"retention"`
}
