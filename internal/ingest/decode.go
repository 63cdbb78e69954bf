package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/freightcast/freightcast/internal/datatype"
	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/jsonscan"
	"github.com/freightcast/freightcast/internal/pipelineconfig"
	"github.com/freightcast/freightcast/internal/transform"
)

// A hand-written parser for the one event shape rather than encoding/json: it reads a feature
// value straight into its slot in model order (no map per event, no reflection), names the exact
// field that is wrong, and refuses what encoding/json would quietly accept (duplicate keys,
// strings where numbers belong, numbers out of float64 range). The JSON itself is read by
// internal/jsonscan. FuzzDecodeEvents checks it against encoding/json.

// maxShipmentDepth bounds the nesting of a shipment, so a hostile body cannot make the
// validation of the opaque part recurse deeply.
const maxShipmentDepth = 64

// eventError is a 400: what is wrong, in which event (index, -1 for the body as a whole) and
// which field.
type eventError struct {
	index int
	field string
	msg   string
}

func (e *eventError) Error() string {
	if e.field != "" {
		return fmt.Sprintf("event %d: %s: %s", e.index, e.field, e.msg)
	}
	return fmt.Sprintf("event %d: %s", e.index, e.msg)
}

// batch holds the events of one body, parsed and validated, in body order. Its slices are
// reused from one request to the next; shipments alias the request's body buffer.
type batch struct {
	ids    []string
	values []float64 // len(ids) × len(features), model order within each event
	// typed replaces values for a model with inputs other than FP32 and FP64.
	typed     []event.Value
	shipments [][]byte
	// raw is the event the transforms read, bound anew for each event that needs them.
	raw transform.Event
}

func (b *batch) reset() {
	b.ids = b.ids[:0]
	b.values = b.values[:0]
	clear(b.typed) // let the old strings go
	b.typed = b.typed[:0]
	clear(b.shipments) // let the old body go
	b.shipments = b.shipments[:0]
}

func (b *batch) len() int { return len(b.ids) }

// decoder parses request bodies for one model's feature names. It is immutable and shared.
type decoder struct {
	features []string
	index    map[string]int
	// inputs[i] is the model input feature i feeds: what it holds, by its datatype. A value
	// beyond it would reach the model as an infinity or a wrapped integer, and its event could
	// never be predicted.
	inputs []featureInput
	// typed is set when an input is not FP32 or FP64: events are queued as typed values
	// (batch.typed, a v2 message), not as numbers.
	typed bool
	// transforms[i] computes feature i from the raw event when the event does not carry it;
	// nil (or a nil entry) when the pipeline has no transform for it.
	transforms []*transform.Feature
}

// featureInput is the model input a feature feeds.
type featureInput struct {
	name     string
	datatype string
	bounds   datatype.Bounds // of a numeric or BOOL input
}

// newDecoder returns the decoder of a model whose one input of type inputType takes features.
func newDecoder(features []string, inputType string) (*decoder, error) {
	return newInputsDecoder([]pipelineconfig.Input{{DataType: inputType, Features: features}})
}

// newInputsDecoder returns the decoder of a model whose inputs take the features, in the order
// of the inputs, each input's in its order.
func newInputsDecoder(inputs []pipelineconfig.Input) (*decoder, error) {
	d := &decoder{index: map[string]int{}}
	for _, in := range inputs {
		fi := featureInput{name: in.Name, datatype: in.DataType}
		switch in.DataType {
		case "FP32", "FP64":
		case "INT64", "INT32", "BOOL", "BYTES":
			d.typed = true
		default:
			return nil, fmt.Errorf("the model's input type %q is not one features can feed (%s)", in.DataType, strings.Join(pipelineconfig.InputDataTypes, ", "))
		}
		fi.bounds, _ = datatype.Of(in.DataType)
		for _, f := range in.Features {
			if f == "" {
				return nil, fmt.Errorf("feature %d has an empty name", len(d.features))
			}
			if _, dup := d.index[f]; dup {
				return nil, fmt.Errorf("feature %q is declared twice", f)
			}
			d.index[f] = len(d.features)
			d.features = append(d.features, f)
			d.inputs = append(d.inputs, fi)
		}
	}
	return d, nil
}

// withTransforms compiles the pipeline's feature transforms, each checked against the type of
// the model input its feature feeds.
func (d *decoder) withTransforms(t pipelineconfig.Transforms) error {
	if len(t.Features) == 0 {
		return nil
	}
	var unknown []string
	for _, f := range t.Features {
		if _, ok := d.index[f.Name]; !ok {
			unknown = append(unknown, strconv.Quote(f.Name))
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("the transforms compute %s, which the model has no input for (its features: %s)", strings.Join(unknown, ", "), strings.Join(d.features, ", "))
	}
	set, err := transform.Compile(t, func(name string) string { return d.inputs[d.index[name]].datatype })
	if err != nil {
		return err
	}
	d.transforms = make([]*transform.Feature, len(d.features))
	for i, name := range d.features {
		d.transforms[i] = set.Get(name)
	}
	return nil
}

// decodeJSON parses an application/json body: one event object or an array of them.
func (d *decoder) decodeJSON(body []byte, b *batch, seen []bool) error {
	var p jsonscan.Scanner
	p.Reset(body)
	p.SkipSpace()
	switch p.Peek() {
	case '{':
		if err := d.parseEvent(&p, 0, b, seen); err != nil {
			return err
		}
	case '[':
		n := 0
		err := p.Array(func() error {
			if p.Peek() != '{' {
				return syntaxError(&p, n, "an event object")
			}
			n++
			return d.parseEvent(&p, n-1, b, seen)
		})
		if err != nil {
			return asEventError(err, -1)
		}
		if n == 0 {
			return &eventError{index: -1, msg: "the array holds no events"}
		}
	default:
		if p.EOF() {
			return &eventError{index: -1, msg: "the body is empty"}
		}
		return syntaxError(&p, -1, "an event object or an array of them")
	}
	p.SkipSpace()
	if !p.EOF() {
		return syntaxError(&p, -1, "the end of the body")
	}
	return nil
}

// decodeNDJSON parses an application/x-ndjson body: one event object per line. Blank lines are
// skipped but counted, so an error's index is the 0-based line number.
func (d *decoder) decodeNDJSON(body []byte, b *batch, seen []bool) error {
	var p jsonscan.Scanner
	for line := 0; len(body) > 0; line++ {
		end := bytes.IndexByte(body, '\n')
		var text []byte
		if end < 0 {
			text, body = body, nil
		} else {
			text, body = body[:end], body[end+1:]
		}
		p.Reset(text)
		p.SkipSpace()
		if p.EOF() {
			continue
		}
		if p.Peek() != '{' {
			return syntaxError(&p, line, "an event object")
		}
		if err := d.parseEvent(&p, line, b, seen); err != nil {
			return err
		}
		p.SkipSpace()
		if !p.EOF() {
			return syntaxError(&p, line, "the end of the line after the event")
		}
	}
	if b.len() == 0 {
		return &eventError{index: -1, msg: "the body holds no events"}
	}
	return nil
}

// parseEvent parses the object at p (which is at '{') and appends it to b. seen has one flag
// per feature and is scratch space.
func (d *decoder) parseEvent(p *jsonscan.Scanner, index int, b *batch, seen []bool) error {
	var (
		id                         string
		haveID, haveFeat, haveShip bool
		shipment                   []byte
	)
	var vals []float64
	var typed []event.Value
	if d.typed {
		base := len(b.typed)
		b.typed = append(b.typed, make([]event.Value, len(d.features))...)
		typed = b.typed[base:]
	} else {
		base := len(b.values)
		b.values = append(b.values, make([]float64, len(d.features))...)
		vals = b.values[base:]
	}
	clear(seen)
	fail := func(field, format string, args ...any) error {
		return &eventError{index: index, field: field, msg: fmt.Sprintf(format, args...)}
	}

	err := p.Object(func(key []byte) error {
		switch string(key) {
		case "id":
			if haveID {
				return fail("id", "given twice")
			}
			haveID = true
			if p.Peek() != '"' {
				return fail("id", "must be a string")
			}
			raw, err := p.String()
			if kindOf(err) == jsonscan.InvalidUTF8 {
				return fail("id", "is not UTF-8 text")
			}
			if err != nil {
				return err
			}
			if problem := event.IDProblem(string(raw)); problem != "" {
				return fail("id", "%s", problem)
			}
			id = string(raw)
		case "features":
			if haveFeat {
				return fail("features", "given twice")
			}
			haveFeat = true
			return d.parseFeatures(p, index, vals, typed, seen)
		case "shipment":
			if haveShip {
				return fail("shipment", "given twice")
			}
			haveShip = true
			start := p.Pos()
			if err := p.Skip(maxShipmentDepth, jsonscan.AnyNumber); err != nil {
				return shipmentError(err, index)
			}
			raw := p.Text()[start:p.Pos()]
			if len(raw) > event.MaxShipmentBytes {
				return fail("shipment", "is %d bytes, the limit is %d", len(raw), event.MaxShipmentBytes)
			}
			if string(raw) != "null" {
				shipment = raw
			}
		default:
			return fail(fieldName(key), "unknown field; an event has id, features and shipment")
		}
		return nil
	})
	if err != nil {
		return asEventError(err, index)
	}
	if !haveID {
		return fail("id", "missing")
	}
	if !haveFeat && len(d.features) > 0 && d.transforms == nil {
		return fail("features", "missing")
	}
	bound := false
	for i, ok := range seen {
		if ok {
			continue // a feature the event carries wins over its transform
		}
		if d.transforms == nil {
			return fail("features."+d.features[i], "missing; the model needs every feature")
		}
		if d.transforms[i] == nil {
			return fail("features."+d.features[i], "missing; the model needs every feature, and the pipeline has no transform for it")
		}
		if !bound {
			if err := b.raw.Bind(id, shipment); err != nil {
				return fail("shipment", "%v", err)
			}
			bound = true
		}
		if err := d.compute(i, &b.raw, vals, typed); err != nil {
			return &eventError{index: index, field: "features." + d.features[i], msg: err.Error()}
		}
	}
	b.ids = append(b.ids, id)
	b.shipments = append(b.shipments, shipment)
	return nil
}

// compute evaluates feature i's transform into vals (typed, for a typed model), checked against
// the model input's type as a value the event carried would be.
func (d *decoder) compute(i int, raw *transform.Event, vals []float64, typed []event.Value) error {
	t, in := d.transforms[i], &d.inputs[i]
	v, err := t.Eval(raw)
	if err != nil {
		return fmt.Errorf("its transform %q failed: %v", t.Expression, err)
	}
	if v.Kind == event.Number || v.Kind == event.Integer {
		if problem := in.bounds.Problem(v.Num); problem != "" {
			return fmt.Errorf("its transform %q computed %v, %s, the type of the model's input%s", t.Expression, v.Num, problem, in.named())
		}
	}
	if typed != nil {
		typed[i] = v
	} else {
		vals[i] = v.Num
	}
	return nil
}

// parseFeatures reads the features object into vals (typed, for a typed model), in model order.
func (d *decoder) parseFeatures(p *jsonscan.Scanner, index int, vals []float64, typed []event.Value, seen []bool) error {
	if p.Peek() != '{' {
		return &eventError{index: index, field: "features", msg: "must be an object of feature name to number"}
	}
	return p.Object(func(name []byte) error {
		// The map lookup with string(name) does not allocate.
		i, known := d.index[string(name)]
		if !known {
			return &eventError{index: index, field: "features." + fieldName(name), msg: "unknown feature; the model has no such input"}
		}
		if seen[i] {
			return &eventError{index: index, field: "features." + d.features[i], msg: "given twice"}
		}
		seen[i] = true
		if typed != nil {
			v, msg := d.inputs[i].parse(p)
			if msg != "" {
				return &eventError{index: index, field: "features." + d.features[i], msg: msg}
			}
			typed[i] = v
			return nil
		}
		start := p.Pos()
		v, msg := parseNumber(p)
		if msg == "" {
			if problem := d.inputs[i].bounds.Problem(v); problem != "" {
				msg = fmt.Sprintf("is %s, %s, the type of the model's input%s", p.Text()[start:p.Pos()], problem, d.inputs[i].named())
			}
		}
		if msg != "" {
			return &eventError{index: index, field: "features." + d.features[i], msg: msg}
		}
		vals[i] = v
		return nil
	})
}

// named is the input's name for an error, after "the model's input".
func (in *featureInput) named() string {
	if in.name == "" {
		return ""
	}
	return " " + strconv.Quote(in.name)
}

// parse reads a feature value for the input: a number for FP32 and FP64, an integer for INT64
// and INT32 (read exactly), true or false for BOOL, a string for BYTES; or says what is wrong
// with it, naming the input.
func (in *featureInput) parse(p *jsonscan.Scanner) (event.Value, string) {
	c := p.Peek()
	switch in.datatype {
	case "BYTES":
		if c != '"' {
			return event.Value{}, fmt.Sprintf("is not a string; the model's input%s takes strings (BYTES)", in.named())
		}
		raw, err := p.String()
		if kindOf(err) == jsonscan.InvalidUTF8 {
			return event.Value{}, "is not UTF-8 text"
		}
		if err != nil {
			return event.Value{}, err.Error()
		}
		return event.StringValue(string(raw)), ""
	case "BOOL":
		switch {
		case c == 't' && p.Literal("true"):
			return event.BoolValue(true), ""
		case c == 'f' && p.Literal("false"):
			return event.BoolValue(false), ""
		case c == '-' || c >= '0' && c <= '9':
			start := p.Pos()
			if _, msg := parseNumber(p); msg != "" {
				return event.Value{}, msg
			}
			return event.Value{}, fmt.Sprintf("is %s; the model's input%s is BOOL, which holds true or false", p.Text()[start:p.Pos()], in.named())
		}
		return event.Value{}, fmt.Sprintf("is not true or false, which the model's input%s (BOOL) takes", in.named())
	}
	start := p.Pos()
	v, msg := parseNumber(p)
	if msg != "" {
		return event.Value{}, msg
	}
	lit := p.Text()[start:p.Pos()]
	if in.bounds.Integer {
		if i, exact := jsonscan.ExactInt(lit); exact && (in.datatype == "INT64" || in.bounds.Holds(float64(i))) {
			return event.IntValue(i), ""
		}
	}
	if problem := in.bounds.Problem(v); problem != "" {
		return event.Value{}, fmt.Sprintf("is %s, %s, the type of the model's input%s", lit, problem, in.named())
	}
	if in.bounds.Integer {
		return event.IntValue(int64(v)), ""
	}
	return event.NumberValue(v), ""
}

// parseNumber reads a feature value, a JSON number as a finite float64, or says what is wrong
// with it.
func parseNumber(p *jsonscan.Scanner) (float64, string) {
	switch c := p.Peek(); {
	case c == '"':
		return 0, "is a string; features are JSON numbers (NaN and Infinity are not accepted)"
	case c == 'n':
		return 0, "is null; every feature needs a number"
	case c != '-' && (c < '0' || c > '9'):
		return 0, "is not a number"
	}
	v, err := p.Number()
	if err != nil {
		if se, ok := err.(*jsonscan.Error); ok && se.Kind == jsonscan.OutOfRange {
			return 0, string(p.Text()[se.Start:se.Offset]) + " is out of the float64 range"
		}
		return 0, "is " + numberProblem(kindOf(err))
	}
	return v, ""
}

// numberProblem words what the scanner found wrong with a number.
func numberProblem(k jsonscan.Kind) string {
	switch k {
	case jsonscan.NoFractionDigit:
		return "not a valid JSON number: no digit after '.'"
	case jsonscan.NoExponentDigit:
		return "not a valid JSON number: no digit in the exponent"
	}
	return "not a valid JSON number"
}

// shipmentError words what the scanner found wrong in a shipment: its depth, its numbers and its
// text are the shipment's own rules, anything else is invalid JSON.
func shipmentError(err error, index int) error {
	switch k := kindOf(err); k {
	case jsonscan.TooDeep:
		return &eventError{index: index, field: "shipment", msg: fmt.Sprintf("nests deeper than %d levels", maxShipmentDepth)}
	case jsonscan.BadNumber, jsonscan.NoFractionDigit, jsonscan.NoExponentDigit:
		return &eventError{index: index, field: "shipment", msg: "holds a number that is " + numberProblem(k)}
	case jsonscan.InvalidUTF8:
		// JSON text is UTF-8; a client's bytes that are not would come back in the prediction
		// record, and strict clients could not decode it.
		return &eventError{index: index, field: "shipment", msg: fmt.Sprintf("holds text that is not UTF-8 (byte %d)", err.(*jsonscan.Error).Offset)}
	}
	return asEventError(err, index)
}

// asEventError gives a syntax error of the scanner the event index it occurred in; errors the
// decoder worded itself pass as they are. The scanner's own words are the API's.
func asEventError(err error, index int) error {
	if se, ok := err.(*jsonscan.Error); ok {
		return &eventError{index: index, msg: se.Error()}
	}
	return err
}

// kindOf is what the scanner found wrong, or 0 for an error of the decoder's own.
func kindOf(err error) jsonscan.Kind {
	if se, ok := err.(*jsonscan.Error); ok {
		return se.Kind
	}
	return 0
}

// syntaxError is an event error for finding something else than want at p.
func syntaxError(p *jsonscan.Scanner, index int, want string) error {
	if p.EOF() {
		return &eventError{index: index, msg: fmt.Sprintf("invalid JSON: the input ends where %s should be", want)}
	}
	return &eventError{index: index, msg: fmt.Sprintf("invalid JSON at byte %d: found %s where %s should be", p.Pos(), jsonscan.QuoteByte(p.Peek()), want)}
}

// fieldName makes a client's key printable in an error without letting it run long.
func fieldName(key []byte) string {
	const limit = 64
	s := string(key)
	if !utf8.ValidString(s) {
		s = strconv.Quote(s)
	}
	if len(s) > limit {
		s = s[:limit] + "…"
	}
	return s
}
