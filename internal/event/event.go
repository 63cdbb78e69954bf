// Package event defines what travels between ingestion and the inference pool: the queue message
// ingestion publishes for each accepted event, and the prediction record a worker writes to the
// predictions bucket. Both sides import it, so the formats cannot drift apart.
//
// # Queue message (one per event, subject Topology.Subject, NATS message id = event id)
//
// Compact JSON, one object, fields in this order:
//
//	{"v":1,"id":"evt-1","features":[0.7,12,3.5],"shipment":{...},"receivedAt":"2026-11-27T08:41:36.123456789Z"}
//
// The fields:
//   - v: format version, 1. A decoder refuses any other, so a worker never guesses.
//   - id: the event id (see ValidID), the same string as the message id and the prediction key.
//   - features: the feature values as numbers, in the MODEL's feature order (the order of the
//     model's declared feature names, which both ingestion and the worker know from the pipeline
//     config or the model), so the worker copies them into its input tensor without a name lookup.
//     Every value is finite.
//   - shipment: the client's opaque shipment JSON, byte for byte as received; absent when the
//     client sent none (or null).
//   - receivedAt: when ingestion received the request, RFC 3339 with nanoseconds, UTC.
//
// JSON rather than a binary layout because it costs little next to the publish itself, and an
// operator can read a stuck message with `nats stream get`.
//
// # Prediction record (predictions bucket Topology.Bucket, key = event id)
//
//	{"v":1,"id":"evt-1","model":"delay","modelVersion":"3","outputs":{"delay_risk":[0.82]},
//	 "shipment":{...},"receivedAt":"...","predictedAt":"..."}
//
// outputs maps each model output name to its values, flattened row-major; for the usual
// one-output disruption model that is a single number. GET /v1/predictions/{id} returns the
// record's bytes unchanged.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// Version is the format version this package writes and the only one it reads.
const Version = 1

const (
	// MaxIDLen bounds an event id: it is a NATS message id, a KV key and a log field.
	MaxIDLen = 128
	// MaxShipmentBytes bounds the opaque shipment JSON of one event.
	MaxShipmentBytes = 16 << 10
)

// ValidID reports why id cannot be an event id, or nil. An id is 1 to MaxIDLen characters of
// [A-Za-z0-9_=.-] that neither starts nor ends with '.' and has no "..": it becomes a key of the
// predictions bucket, and NATS KV keys are subject tokens separated by '.', which must not be
// empty and must not hold spaces, '*' or '>'. '/' is legal in KV keys but left out so that an id
// is also one path segment of /v1/predictions/{id}.
func ValidID(id string) error {
	if problem := IDProblem(id); problem != "" {
		return errors.New("id " + problem)
	}
	return nil
}

// IDProblem says what is wrong with id, without naming the field ("is empty"), so that a caller
// reporting the field apart, such as a JSON decoder pointing at it, need not cut it out; "" when
// the id is valid.
func IDProblem(id string) string {
	if id == "" {
		return "is empty"
	}
	if len(id) > MaxIDLen {
		return fmt.Sprintf("is %d bytes long, the limit is %d", len(id), MaxIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '=' || c == '.'
		if !ok {
			if c >= utf8.RuneSelf {
				return fmt.Sprintf("has a non-ASCII byte at offset %d; ids use only [A-Za-z0-9_=.-]", i)
			}
			return fmt.Sprintf("has %q at offset %d; ids use only [A-Za-z0-9_=.-]", c, i)
		}
		if c == '.' && (i == 0 || i == len(id)-1 || id[i-1] == '.') {
			return "must not start or end with '.' nor contain \"..\""
		}
	}
	return ""
}

// Event is an accepted freight event as the inference pool receives it.
type Event struct {
	// ID is the client's event id, also the NATS message id and the prediction key.
	ID string
	// Features are the values in the model's feature order.
	Features []float64
	// Shipment is the client's opaque shipment JSON, nil when absent.
	Shipment json.RawMessage
	// ReceivedAt is when ingestion received the event.
	ReceivedAt time.Time
}

// Validate reports the first property of e that a consumer must not trust.
func (e *Event) Validate() error {
	if err := e.validateDecoded(); err != nil {
		return err
	}
	if len(e.Shipment) > 0 && !json.Valid(e.Shipment) {
		return errors.New("shipment is not valid JSON")
	}
	return nil
}

// validateDecoded is Validate but for the shipment's syntax, which it leaves to the caller:
// Decode's json.Decoder has checked the whole message already, and parsing the shipment again
// on every event the worker reads would buy nothing.
func (e *Event) validateDecoded() error {
	if err := ValidID(e.ID); err != nil {
		return err
	}
	for i, f := range e.Features {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("features[%d] is %v, not a finite number", i, f)
		}
	}
	if len(e.Shipment) > MaxShipmentBytes {
		return fmt.Errorf("shipment is %d bytes, the limit is %d", len(e.Shipment), MaxShipmentBytes)
	}
	return nil
}

// AppendEncode appends the queue message of e to dst and returns the extended slice. It trusts
// e: ingestion validated every part of it before, and re-checking on the hot path would double
// the cost. The shipment must be compact already or is kept as it is (JSON allows both).
func AppendEncode(dst []byte, e *Event) []byte {
	dst = append(dst, `{"v":1,"id":"`...)
	dst = append(dst, e.ID...) // ValidID's charset needs no escaping.
	dst = append(dst, `","features":[`...)
	for i, f := range e.Features {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendFloat(dst, f)
	}
	dst = append(dst, ']')
	if len(e.Shipment) > 0 {
		dst = append(dst, `,"shipment":`...)
		dst = append(dst, e.Shipment...)
	}
	dst = append(dst, `,"receivedAt":"`...)
	dst = e.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, `"}`...)
}

// appendFloat writes f as encoding/json would, so that decoding returns the same float64.
func appendFloat(dst []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	n := len(dst)
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Like encoding/json, write e-09 as e-9.
		if m := len(dst); m-n >= 4 && dst[m-4] == 'e' && dst[m-3] == '-' && dst[m-2] == '0' {
			dst[m-2] = dst[m-1]
			dst = dst[:m-1]
		}
	}
	return dst
}

// Encode validates e and returns its queue message.
func Encode(e *Event) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("event: %w", err)
	}
	return AppendEncode(nil, e), nil
}

// wireEvent is the queue message as encoding/json sees it.
type wireEvent struct {
	V          int             `json:"v"`
	ID         string          `json:"id"`
	Features   []float64       `json:"features"`
	Shipment   json.RawMessage `json:"shipment"`
	ReceivedAt time.Time       `json:"receivedAt"`
}

// Decode parses and validates a queue message. A wrong version, a missing field or an invalid
// value is an error: the worker should dead-letter such a message rather than predict on it.
// features must have the length the worker's model expects; Decode cannot know it, so the
// worker checks len(e.Features).
func Decode(data []byte) (Event, error) {
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	if dec.More() {
		return Event{}, errors.New("event: data after the message object")
	}
	if w.V != Version {
		return Event{}, fmt.Errorf("event: format version %d, this build reads %d", w.V, Version)
	}
	if w.Features == nil {
		return Event{}, errors.New("event: features missing")
	}
	if w.ReceivedAt.IsZero() {
		return Event{}, errors.New("event: receivedAt missing")
	}
	if bytes.Equal(w.Shipment, []byte("null")) {
		w.Shipment = nil
	}
	e := Event{ID: w.ID, Features: w.Features, Shipment: w.Shipment, ReceivedAt: w.ReceivedAt}
	if err := e.validateDecoded(); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	return e, nil
}

// Prediction is the record a worker stores in the predictions bucket under the event id.
type Prediction struct {
	// Version is the format version, always Version when written by this package.
	Version int `json:"v"`
	// ID is the event id.
	ID string `json:"id"`
	// Model and ModelVersion name the model that predicted.
	Model        string `json:"model"`
	ModelVersion string `json:"modelVersion"`
	// Outputs maps each model output name to its values, flattened row-major.
	Outputs map[string][]float64 `json:"outputs"`
	// Shipment is the event's shipment JSON, passed through.
	Shipment json.RawMessage `json:"shipment,omitempty"`
	// ReceivedAt is when ingestion received the event; PredictedAt when the worker finished.
	ReceivedAt  time.Time `json:"receivedAt"`
	PredictedAt time.Time `json:"predictedAt"`
}

// Validate reports the first property of p that would make it a bad record.
func (p *Prediction) Validate() error {
	if p.Version != Version {
		return fmt.Errorf("format version %d, this build reads %d", p.Version, Version)
	}
	if err := ValidID(p.ID); err != nil {
		return err
	}
	if p.Model == "" {
		return errors.New("model is empty")
	}
	if len(p.Outputs) == 0 {
		return errors.New("outputs are empty")
	}
	for name, vs := range p.Outputs {
		if name == "" {
			return errors.New("an output has an empty name")
		}
		for i, v := range vs {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("outputs.%s[%d] is %v, not a finite number", name, i, v)
			}
		}
	}
	if len(p.Shipment) > 0 && !json.Valid(p.Shipment) {
		return errors.New("shipment is not valid JSON")
	}
	if p.PredictedAt.IsZero() {
		return errors.New("predictedAt is missing")
	}
	return nil
}

// EncodePrediction validates p (setting Version when it is zero) and returns the record's bytes.
func EncodePrediction(p Prediction) ([]byte, error) {
	if p.Version == 0 {
		p.Version = Version
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("prediction: %w", err)
	}
	return json.Marshal(p)
}

// DecodePrediction parses and validates a prediction record.
func DecodePrediction(data []byte) (Prediction, error) {
	var p Prediction
	if err := json.Unmarshal(data, &p); err != nil {
		return Prediction{}, fmt.Errorf("prediction: %w", err)
	}
	if err := p.Validate(); err != nil {
		return Prediction{}, fmt.Errorf("prediction: %w", err)
	}
	return p, nil
}
