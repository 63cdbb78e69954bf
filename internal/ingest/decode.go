package ingest

import (
	"bytes"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/freightcast/freightcast/internal/event"
	"github.com/freightcast/freightcast/internal/jsonscan"
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
	ids       []string
	values    []float64 // len(ids) × len(features), model order within each event
	shipments [][]byte
}

func (b *batch) reset() {
	b.ids = b.ids[:0]
	b.values = b.values[:0]
	clear(b.shipments) // let the old body go
	b.shipments = b.shipments[:0]
}

func (b *batch) len() int { return len(b.ids) }

// decoder parses request bodies for one model's feature names. It is immutable and shared.
type decoder struct {
	features []string
	index    map[string]int
}

func newDecoder(features []string) (*decoder, error) {
	d := &decoder{features: features, index: make(map[string]int, len(features))}
	for i, f := range features {
		if f == "" {
			return nil, fmt.Errorf("feature %d has an empty name", i)
		}
		if _, dup := d.index[f]; dup {
			return nil, fmt.Errorf("feature %q is declared twice", f)
		}
		d.index[f] = i
	}
	return d, nil
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
	base := len(b.values)
	b.values = append(b.values, make([]float64, len(d.features))...)
	vals := b.values[base:]
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
			return d.parseFeatures(p, index, vals, seen)
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
	if !haveFeat && len(d.features) > 0 {
		return fail("features", "missing")
	}
	for i, ok := range seen {
		if !ok {
			return fail("features."+d.features[i], "missing; the model needs every feature")
		}
	}
	b.ids = append(b.ids, id)
	b.shipments = append(b.shipments, shipment)
	return nil
}

// parseFeatures reads the features object into vals, in model order.
func (d *decoder) parseFeatures(p *jsonscan.Scanner, index int, vals []float64, seen []bool) error {
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
		v, msg := parseNumber(p)
		if msg != "" {
			return &eventError{index: index, field: "features." + d.features[i], msg: msg}
		}
		vals[i], seen[i] = v, true
		return nil
	})
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

// shipmentError words what the scanner found wrong in a shipment: its depth and its numbers are
// the shipment's own rules, anything else is invalid JSON.
func shipmentError(err error, index int) error {
	switch k := kindOf(err); k {
	case jsonscan.TooDeep:
		return &eventError{index: index, field: "shipment", msg: fmt.Sprintf("nests deeper than %d levels", maxShipmentDepth)}
	case jsonscan.BadNumber, jsonscan.NoFractionDigit, jsonscan.NoExponentDigit:
		return &eventError{index: index, field: "shipment", msg: "holds a number that is " + numberProblem(k)}
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
	return &eventError{index: index, msg: fmt.Sprintf("invalid JSON at byte %d: found %q where %s should be", p.Pos(), p.Peek(), want)}
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
