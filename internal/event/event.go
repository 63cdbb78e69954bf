// Package event defines what travels between ingestion and the inference pool: the queue message
// ingestion publishes for each accepted event, and the prediction record a worker writes to the
// predictions bucket. Both sides import it, so the formats cannot drift apart.
//
// # Queue message (one per event, subject Topology.EventSubject(id), NATS message id = event id)
//
// Compact JSON, one object, fields in this order:
//
//	{"v":1,"id":"evt-1","features":[0.7,12,3.5],"shipment":{...},"receivedAt":"2026-11-27T08:41:36.123456789Z"}
//	{"v":2,"id":"evt-2","features":[0.7,12,3.5,2,"CNSHA",true],"receivedAt":"2026-11-27T08:41:36.123456789Z"}
//
// The fields:
//   - v: format version. 1 when every feature is a number (a model of FP32 and FP64 inputs,
//     the only kind earlier versions queued), 2 when the features are typed: numbers, integers,
//     booleans and strings. A decoder refuses any other version, so a worker never guesses; a
//     worker of this version reads both.
//   - id: the event id (see ValidID), the same string as the message id and the prediction key.
//   - features: the feature values in the MODEL's feature order: the features of the model's
//     first input, then those of its second, ... (the inputs in the order of the model file,
//     each input's features in the order the pipeline declares them; a model of one input takes
//     the order of its declared feature names). Ingestion and the worker both know the layout
//     from the pipeline config and the model, so the worker copies the values into its input
//     tensors without a name lookup. In v1 every value is a finite number. In v2 each value is
//     the JSON literal of its input's type: a finite number for FP32 and FP64, an integer
//     written without fraction or exponent for INT64 and INT32 (read exactly, never through
//     float64, so an id beyond 2^53 keeps its digits), true or false for BOOL, a string for
//     BYTES.
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
//	{"v":1,"id":"evt-2","model":"late","modelVersion":"1",
//	 "outputs":{"output_label":[1],"output_probability":[0.12,0.88]},
//	 "labels":{"output_probability":[0,1]},"receivedAt":"...","predictedAt":"..."}
//
// outputs maps every model output's name to the event's values of it (its row of the output,
// flattened row-major), each as the JSON literal of the output's type: numbers for FP32 and
// FP64 (every one finite), integers for the integer types (a class label), true or false for
// BOOL, strings for BYTES (a string class label). For the usual one-output disruption model that
// is a single number; a classifier gives its label and its class probabilities; a regressor
// its value. labels, present only for a model with a map output (what ZipMap makes of a
// classifier's probabilities), maps that output's name to its keys, the class labels, in the
// order of its values: output_probability[j] is the probability of labels.output_probability[j].
// The names and types are those of the model metadata over OIP (docs/inference.md).
// features, present only when the pipeline records inputs (spec.output.recordInputs), maps each
// feature the model was given to its value, in the model's feature order:
// "features":{"distance_km":8927.1,"mode_ocean":1,...}, after shipment.
// GET /v1/predictions/{id} returns the record's bytes unchanged.
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

	"github.com/freightcast/freightcast/internal/jsonscan"
)

// Version is the format version of records, and of queue messages whose features are all
// numbers.
const Version = 1

// TypedVersion is the format version of queue messages with typed features (Event.Values).
const TypedVersion = 2

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
	// Features are the values in the model's feature order when every one is a number (a v1
	// message); nil when Values holds them.
	Features []float64
	// Values are the typed values in the model's feature order (a v2 message), for a model
	// with inputs other than FP32 and FP64; nil when Features holds them.
	Values []Value
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
	if e.Features != nil && e.Values != nil {
		return errors.New("both features and typed values are set")
	}
	for i, v := range e.Values {
		if v.Kind > String {
			return fmt.Errorf("features[%d] is of unknown kind %d", i, v.Kind)
		}
		if v.Kind == Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			return fmt.Errorf("features[%d] is %v, not a finite number", i, v.Num)
		}
		if v.Kind == String && !utf8.ValidString(v.Str) {
			return fmt.Errorf("features[%d] is not UTF-8 text", i)
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
	if e.Values != nil {
		dst = append(dst, `{"v":2,"id":"`...)
	} else {
		dst = append(dst, `{"v":1,"id":"`...)
	}
	dst = append(dst, e.ID...) // ValidID's charset needs no escaping.
	dst = append(dst, `","features":[`...)
	for i, f := range e.Features {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendFloat(dst, f)
	}
	for i, v := range e.Values {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = v.appendFeature(dst)
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
	Features   json.RawMessage `json:"features"`
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
	if w.V != Version && w.V != TypedVersion {
		return Event{}, fmt.Errorf("event: format version %d, this build reads %d and %d", w.V, Version, TypedVersion)
	}
	if w.Features == nil || string(w.Features) == "null" {
		return Event{}, errors.New("event: features missing")
	}
	if w.ReceivedAt.IsZero() {
		return Event{}, errors.New("event: receivedAt missing")
	}
	if bytes.Equal(w.Shipment, []byte("null")) {
		w.Shipment = nil
	}
	e := Event{ID: w.ID, Shipment: w.Shipment, ReceivedAt: w.ReceivedAt}
	if err := decodeFeatures(w.Features, w.V == TypedVersion, &e); err != nil {
		return Event{}, fmt.Errorf("event: features: %w", err)
	}
	if err := e.validateDecoded(); err != nil {
		return Event{}, fmt.Errorf("event: %w", err)
	}
	return e, nil
}

// decodeFeatures reads the features array of a message: numbers into e.Features (v1), typed
// values into e.Values (v2).
func decodeFeatures(raw []byte, typed bool, e *Event) error {
	var s jsonscan.Scanner
	s.Reset(raw)
	s.SkipSpace()
	// Sized once: a comma per value but the last (the array holds no nested values).
	n := bytes.Count(raw, []byte{','}) + 1
	if typed {
		e.Values = make([]Value, 0, n)
	} else {
		e.Features = make([]float64, 0, n)
	}
	return s.Array(func() error {
		if typed {
			v, err := scanValue(&s)
			e.Values = append(e.Values, v)
			return err
		}
		f, err := s.Number()
		e.Features = append(e.Features, f)
		return err
	})
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
	// Outputs maps each model output name to the event's values of it, flattened row-major.
	Outputs map[string][]Value `json:"outputs"`
	// Labels maps each map output (ZipMap's probabilities) to its keys, the class labels.
	Labels map[string][]Value `json:"labels,omitempty"`
	// Shipment is the event's shipment JSON, passed through.
	Shipment json.RawMessage `json:"shipment,omitempty"`
	// Features, when the pipeline records inputs, are the feature values the model saw.
	Features *Features `json:"features,omitempty"`
	// ReceivedAt is when ingestion received the event; PredictedAt when the worker finished.
	ReceivedAt  time.Time `json:"receivedAt"`
	PredictedAt time.Time `json:"predictedAt"`
}

// Numbers makes Number values, for a record's outputs.
func Numbers(fs ...float64) []Value {
	vs := make([]Value, len(fs))
	for i, f := range fs {
		vs[i] = NumberValue(f)
	}
	return vs
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
		if err := checkValues("outputs."+name, vs); err != nil {
			return err
		}
	}
	for name, vs := range p.Labels {
		if _, ok := p.Outputs[name]; !ok {
			return fmt.Errorf("labels.%s: no output of that name", name)
		}
		if err := checkValues("labels."+name, vs); err != nil {
			return err
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

func checkValues(field string, vs []Value) error {
	for i, v := range vs {
		if v.Kind == Number && (math.IsNaN(v.Num) || math.IsInf(v.Num, 0)) {
			return fmt.Errorf("%s[%d] is %v, not a finite number", field, i, v.Num)
		}
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
